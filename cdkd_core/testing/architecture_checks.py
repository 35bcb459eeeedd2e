"""The architectures' contract check, :func:`check_architecture`, and its named checks
(``check_trunk``, ``check_stem_output``, ``check_head_output``).
"""

from __future__ import annotations

from typing import Any

from cdkd_core.testing._common import _asserting


def _trunk_widths(arch: Any, rows: int) -> tuple[int, int]:
    """Build ``arch``'s trunk and check it (declared widths, ``[N, out_features]``); its
    ``in_features`` and ``out_features``."""
    import torch

    from cdkd_core.components import contracts

    trunk = arch.build_trunk()
    width, out = contracts.check_trunk(arch, trunk)
    trunk.eval()
    contracts.check_trunk_output(arch, trunk(torch.randn(rows, width)), rows, out)
    return width, out


def _check_stem(
    arch: Any, x: Any, width: int, num_classes: int, vocabulary: str | None = None
) -> None:
    """Build ``arch``'s stem for its first modality over ``x``'s shape (token ids of
    ``vocabulary``, where given) and check that it maps ``x`` to ``[N, width]``."""
    from cdkd_core.components import contracts
    from cdkd_core.components.slot import NetworkSlot

    slot = NetworkSlot(
        name="test",
        space="test",
        modality=arch.modalities[0],
        task="test",
        num_classes=num_classes,
        input_shape=tuple(int(n) for n in x.shape[1:]),
        input_dtype=str(x.dtype).removeprefix("torch."),
        vocabulary=vocabulary,
    )
    stem = arch.build_stem_for(slot, width)
    stem.eval()
    contracts.check_stem_output(arch, stem(x), len(x), width)


def _check_head(arch: Any, rows: int, width: int, num_classes: int) -> None:
    """Build ``arch``'s head over ``width`` features and check it gives ``[N, classes]``."""
    import torch

    from cdkd_core.components import contracts

    head = arch.build_head(width, num_classes)
    head.eval()
    contracts.check_head_output(arch, head(torch.randn(rows, width)), rows, num_classes)


def check_architecture(
    arch: Any,
    inputs: Any = None,
    *,
    num_classes: int = 3,
    stem_width: int = 16,
    vocabulary: str | None = None,
) -> None:
    """Build what ``arch`` provides and check what a run checks, on ``inputs`` (default:
    ``torch.randn(4, 13)``, a table of 13 columns): a stem (for its first modality) maps
    them to ``[N, width]`` (the trunk's ``in_features`` when it is a trunk too, else
    ``stem_width``), a trunk declares ``in_features``/``out_features`` and maps
    ``[N, in_features]`` to ``[N, out_features]``, a head gives ``[N, num_classes]``.
    Raises ``AssertionError`` naming what broke.

    Args:
        arch: An architecture (built with its params).
        inputs: A batch for its stem (its first modality's), e.g. an image batch.
        num_classes: Classes of the head checked.
        stem_width: The stem's output width when ``arch`` provides no trunk.
        vocabulary: The token vocabulary ``inputs`` are ids of, for a text stem that reads
            a named one (a domain's ``student_vocabulary``, e.g. ``minilm-wordpiece``).

    Raises:
        AssertionError: A contract is broken (the message a run would print).

    Examples:
        >>> import torch
        >>> from cdkd_core.plugin_api import check_architecture
        >>> from cdkd_core.testing import make_host
        >>> mlp = make_host().get("architectures", "mlp").from_params({"width": 16})
        >>> check_architecture(mlp)  # a stem over 13 columns, the trunk, a head
        >>> check_architecture(mlp, torch.randn(4, 7), num_classes=5)
    """
    import torch

    x = torch.randn(4, 13) if inputs is None else inputs

    def run() -> None:
        width, out = stem_width, stem_width
        with torch.no_grad():
            if arch.provides_trunk:
                width, out = _trunk_widths(arch, len(x))
            if arch.modalities:
                _check_stem(arch, x, width, num_classes, vocabulary)
            _check_head(arch, len(x), out, num_classes)

    _asserting(run)


def _sample_inputs(modality: str) -> Any:
    """A batch of 4 for a stem of ``modality``, what the named architecture checks use
    unless given ``inputs``: rows of 13 columns (``tabular``, as :func:`check_architecture`
    uses), windows of 20 steps x 4 features (``series``), 1 x 24 x 24 images (``image``),
    16 token ids under 100 (``text``)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    if modality == "series":
        return torch.randn(4, 20, 4, generator=gen)
    if modality == "image":
        return torch.randn(4, 1, 24, 24, generator=gen)
    if modality == "text":
        return torch.randint(0, 100, (4, 16), generator=gen)
    return torch.randn(4, 13, generator=gen)


def _architecture_inputs(arch: Any, inputs: Any) -> Any:
    return inputs if inputs is not None else _sample_inputs(next(iter(arch.modalities), ""))


def _check_trunk(arch: Any, inputs: Any = None, **_: Any) -> None:
    import torch

    with torch.no_grad():
        _trunk_widths(arch, len(_architecture_inputs(arch, inputs)))


def _check_stem_output(
    arch: Any,
    inputs: Any = None,
    *,
    num_classes: int = 3,
    stem_width: int = 16,
    vocabulary: str | None = None,
) -> None:
    import torch

    x = _architecture_inputs(arch, inputs)
    with torch.no_grad():
        width = _trunk_widths(arch, len(x))[0] if arch.provides_trunk else stem_width
        _check_stem(arch, x, width, num_classes, vocabulary)


def _check_head_output(
    arch: Any,
    inputs: Any = None,
    *,
    num_classes: int = 3,
    stem_width: int = 16,
    vocabulary: str | None = None,
) -> None:
    import torch

    rows = len(_architecture_inputs(arch, inputs))
    with torch.no_grad():
        out = _trunk_widths(arch, rows)[1] if arch.provides_trunk else stem_width
        _check_head(arch, rows, out, num_classes)
