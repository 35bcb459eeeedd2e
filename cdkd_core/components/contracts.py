"""The contract each kind of component keeps, checked right after the call that can break it.

One function per check; each raises :class:`ContractError` naming the component kind and
name, what was expected and what was found. The pipeline calls them where a broken
contract would otherwise fail much later (an encoder state that only fails at save time,
a vector width that only fails inside a loss) and adds the providing plugin, its version
and the stage before the message is shown. :mod:`cdkd_core.testing` offers the same checks
to plugin authors (``check_domain``, ``check_encoder``, ``check_loss``,
``check_architecture``, ``check_feedback``).
"""

from __future__ import annotations

import json
import math
import pickletools
from typing import Any

import torch

from cdkd_core.errors import PluginError

#: Largest uint8 state tensor whose bytes are parsed for a pickle stream beyond its header.
PICKLE_SCAN_BYTES = 64 * 2**20


class ContractError(PluginError):
    """A component broke the contract of its kind (a wrong shape, dtype or state).

    ``plugin``, ``version`` and ``stage`` are filled in by the pipeline (:meth:`attribute`)
    once it knows them; the message names whatever is known.
    """

    def __init__(self, kind: str, component: Any, problem: str) -> None:
        self.kind = kind
        self.cls: type = component if isinstance(component, type) else type(component)
        self.problem = problem
        self.plugin: str | None = None
        self.version: str | None = None
        self.stage: str | None = None
        super().__init__(problem)

    @property
    def component(self) -> str:
        """The component's registered name (its class name when it has none)."""
        return getattr(self.cls, "name", "") or self.cls.__name__

    def attribute(self, plugin: str | None, version: str | None, stage: str | None) -> None:
        """Record the providing plugin, its version and the pipeline stage."""
        self.plugin, self.version, self.stage = plugin, version, stage

    def __str__(self) -> str:
        from cdkd_core.components.kinds import kind_label

        what = f"{kind_label(self.kind)} {self.component!r}"
        if self.plugin is not None:
            version = f" {self.version}" if self.version else ""
            what = f"plugin {self.plugin!r}{version}, {what},"
        during = f" during {self.stage}" if self.stage else ""
        return f"{what} broke its contract{during}: {self.problem}"


def _shape(value: Any) -> str:
    return str(list(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__


def _type_name(value: Any) -> str:
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


# -- domains ------------------------------------------------------------------------------


def check_domain_data(domain: Any, data: Any, seed: int) -> None:
    """``load(seed)`` returned a :class:`~cdkd_core.components.domain.DomainData` (which
    checks its own splits, classes and labels as it is built)."""
    from cdkd_core.components.domain import DomainData

    if not isinstance(data, DomainData):
        found = "None" if data is None else f"a {_type_name(data)}"
        raise ContractError(
            "domains",
            domain,
            f"load(seed={seed}) returned {found}; expected a DomainData (its train, val and "
            "test splits, classes and metrics)",
        )


# -- encoders -----------------------------------------------------------------------------


def check_encoder_dim(encoder: Any) -> int:
    """``encoder.dim`` is a positive int; returns it."""
    dim = encoder.dim
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ContractError(
            "encoders", encoder, f"dim is {dim!r}, expected a positive int (the vector width k)"
        )
    return dim


def check_encoder_output(encoder: Any, features: torch.Tensor, output: Any, domain: str) -> None:
    """``transform(features, domain)`` gave a floating, finite ``[N, dim]`` tensor."""
    dim = check_encoder_dim(encoder)
    expected = f"expected a floating tensor of shape [{len(features)}, {dim}] ([N, dim])"
    where = f"transform(features [{len(features)}, ...], {domain!r})"
    if not isinstance(output, torch.Tensor):
        raise ContractError(
            "encoders", encoder, f"{where} returned a {_type_name(output)}; {expected}"
        )
    if tuple(output.shape) != (len(features), dim):
        raise ContractError(
            "encoders", encoder, f"{where} returned shape {_shape(output)}; {expected}"
        )
    if not output.is_floating_point():
        raise ContractError(
            "encoders", encoder, f"{where} returned dtype {output.dtype}; {expected}"
        )
    if not bool(torch.isfinite(output).all()):
        raise ContractError(
            "encoders", encoder, f"{where} returned NaN or infinite values; expected finite"
        )


def looks_like_pickle(data: bytes) -> bool:
    """Whether ``data`` is (or starts as) a pickle stream: a protocol 2-5 header, or bytes
    that :mod:`pickletools` reads as one whole stream ending in STOP."""
    if len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return True
    if not data or len(data) > PICKLE_SCAN_BYTES:
        return False
    try:
        last = None
        for opcode, _, pos in pickletools.genops(data):
            last = (opcode.name, pos)
    except Exception:  # not a pickle stream
        return False
    return last is not None and last[0] == "STOP" and last[1] == len(data) - 1


def _json_problem(value: Any, path: str) -> str | None:
    """The first place under ``value`` that JSON cannot hold, or None."""
    if value is None or isinstance(value, (bool, int, str)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path} is {value} (not valid JSON)"
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            problem = _json_problem(item, f"{path}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path} has a key {key!r} of type {_type_name(key)} (JSON keys are str)"
            problem = _json_problem(item, f"{path}.{key}")
            if problem:
                return problem
        return None
    return f"{path} is a {_type_name(value)}"


def check_encoder_state(encoder: Any, state: Any = None) -> None:
    """``state()`` gives ``(tensors, metadata)``: a dict of str -> torch.Tensor (no pickle
    bytes smuggled in a uint8 tensor) and JSON-serialisable metadata, as saved to
    safetensors + JSON. ``state`` is what ``state()`` returned (called when omitted)."""
    state = encoder.state() if state is None else state
    expected = "expected (tensors: dict[str, torch.Tensor], metadata: JSON-serialisable dict)"
    if not (isinstance(state, tuple) and len(state) == 2):
        raise ContractError(
            "encoders", encoder, f"state() returned {_type_name(state)}; {expected}"
        )
    tensors, meta = state
    if not isinstance(tensors, dict):
        raise ContractError(
            "encoders", encoder, f"state() tensors is a {_type_name(tensors)}; {expected}"
        )
    for key, value in tensors.items():
        if not isinstance(key, str):
            raise ContractError(
                "encoders", encoder, f"state() tensors has a key {key!r}; keys must be str"
            )
        if not isinstance(value, torch.Tensor):
            raise ContractError(
                "encoders",
                encoder,
                f"state() tensors[{key!r}] is a {_type_name(value)}; expected a torch.Tensor "
                "(state is saved as safetensors + JSON, never pickle: convert arrays with "
                "torch.as_tensor and keep fitted objects as their tensors)",
            )
        if value.dtype == torch.uint8 and looks_like_pickle(
            value.detach().flatten().cpu().numpy().tobytes()
        ):
            raise ContractError(
                "encoders",
                encoder,
                f"state() tensors[{key!r}] holds a pickle stream as uint8 bytes; state is "
                "saved as safetensors + JSON, never pickle: store the fitted tensors instead",
            )
    if not isinstance(meta, dict):
        raise ContractError(
            "encoders", encoder, f"state() metadata is a {_type_name(meta)}; {expected}"
        )
    problem = _json_problem(meta, "metadata")
    if problem:
        raise ContractError(
            "encoders",
            encoder,
            f"state() {problem}; expected JSON-serialisable metadata (str, int, float, bool, "
            "None, lists and dicts of them)",
        )
    json.dumps(meta)  # what the run directory's encoder.json holds


# -- losses -------------------------------------------------------------------------------


def check_loss_value(loss: Any, value: Any) -> None:
    """``loss(ctx)`` returned None or a floating scalar tensor (shape ``[]`` or ``[1]``).
    Cheap: no device sync (finiteness is the training loop's NaN check)."""
    if value is None:
        return
    expected = "expected a floating scalar tensor (or None to skip the batch)"
    if not isinstance(value, torch.Tensor):
        raise ContractError("losses", loss, f"returned a {_type_name(value)}; {expected}")
    if value.numel() != 1 or value.dim() > 1:
        raise ContractError("losses", loss, f"returned shape {_shape(value)}; {expected}")
    if not value.is_floating_point():
        raise ContractError("losses", loss, f"returned dtype {value.dtype}; {expected}")


def check_loss_finite(loss: Any, value: torch.Tensor | None) -> None:
    """A loss value is finite (syncs with the device: for tests and one-off checks)."""
    if value is not None and not bool(torch.isfinite(value).all()):
        raise ContractError("losses", loss, f"returned {value.item()}; expected a finite value")


# -- architectures ------------------------------------------------------------------------


def _check_width(arch: Any, part: str, value: Any, n: int, width: int, what: str) -> None:
    expected = f"expected a floating tensor of shape [{n}, {width}] ([N, {what}])"
    if not isinstance(value, torch.Tensor):
        raise ContractError(
            "architectures", arch, f"its {part} returned a {_type_name(value)}; {expected}"
        )
    if tuple(value.shape) != (n, width):
        raise ContractError(
            "architectures", arch, f"its {part} returned shape {_shape(value)}; {expected}"
        )
    if not value.is_floating_point():
        raise ContractError(
            "architectures", arch, f"its {part} returned dtype {value.dtype}; {expected}"
        )


def check_trunk(arch: Any, trunk: Any) -> tuple[int, int]:
    """A trunk module declares int ``in_features`` and ``out_features``; returns them."""
    widths = []
    for attr in ("in_features", "out_features"):
        value = getattr(trunk, attr, None)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ContractError(
                "architectures",
                arch,
                f"its trunk's {attr} is {value!r}; expected a positive int (the trunk sets "
                "in_features and out_features)",
            )
        widths.append(value)
    return widths[0], widths[1]


def check_stem_output(arch: Any, output: Any, n: int, width: int) -> None:
    """A stem mapped ``n`` inputs to ``[n, width]`` (the trunk's ``in_features``)."""
    _check_width(arch, "stem", output, n, width, "trunk.in_features")


def check_trunk_output(arch: Any, output: Any, n: int, width: int) -> None:
    """A trunk mapped ``n`` rows to ``[n, width]`` (its ``out_features``)."""
    _check_width(arch, "trunk", output, n, width, "trunk.out_features")


def check_head_output(arch: Any, output: Any, n: int, classes: int) -> None:
    """A head mapped ``n`` rows to ``[n, classes]`` logits."""
    _check_width(arch, "head", output, n, classes, "classes")


# -- feedback -----------------------------------------------------------------------------


def check_feedback_result(strategy: Any, result: Any) -> bool:
    """``after_round`` returned whether it changed the teacher (a bool, or None for no):
    a strategy updates ``ctx.teacher`` in place, so a new teacher returned instead would be
    silently dropped. Returns the bool."""
    if result is None or isinstance(result, bool):
        return bool(result)
    raise ContractError(
        "feedback",
        strategy,
        f"after_round returned a {type(result).__name__}; expected True or False (whether it "
        "changed ctx.teacher, which it updates in place; a new teacher returned is not used)",
    )
