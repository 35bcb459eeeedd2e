"""The encoders' contract check, :func:`check_encoder`, and its named checks
(``check_encoder_dim``, ``check_encoder_state``, ``check_transform_output``,
``check_state_restores_transform``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cdkd_core.testing._common import _asserting, _fresh


def _sample_features() -> tuple[dict[str, Any], dict[str, Any]]:
    """Teacher features of two domains (60 and 40 rows of 48 random columns, room for an
    encoder's default dim) and labels: what the named encoder checks fit on unless given
    ``features`` and ``labels``."""
    import torch

    gen = torch.Generator().manual_seed(0)
    features = {"a": torch.randn(60, 48, generator=gen), "b": torch.randn(40, 48, generator=gen)}
    return features, {"a": torch.arange(60) % 3, "b": torch.arange(40) % 2}


def _encoder_vectors(encoder: Any, features: Mapping[str, Any]) -> dict[str, Any]:
    """Each domain's vectors, each checked as a run checks them (floating, finite,
    ``[N, dim]``)."""
    from cdkd_core.components import contracts

    vectors = {}
    for domain, x in features.items():
        vectors[domain] = encoder.transform(x, domain)
        contracts.check_encoder_output(encoder, x, vectors[domain], domain)
    return vectors


def _encoder_restores(
    encoder: Any, features: Mapping[str, Any], vectors: Mapping[str, Any], atol: float
) -> None:
    """The state saved and loaded into a new instance transforms as ``encoder`` did."""
    import tempfile

    import torch

    from cdkd_core.components import contracts

    with tempfile.TemporaryDirectory() as tmp:
        encoder.save(Path(tmp))
        restored = type(encoder)(encoder.config)
        restored.load(Path(tmp))
    for domain, x in features.items():
        again = restored.transform(x, domain)
        contracts.check_encoder_output(restored, x, again, domain)
        if not torch.allclose(again.double(), vectors[domain].double(), atol=atol):
            raise contracts.ContractError(
                "encoders",
                encoder,
                f"transform(..., {domain!r}) differs after save() and load() into a new "
                "instance; expected state() to hold everything transform needs",
            )


def check_encoder(
    encoder: Any,
    features: Mapping[str, Any],
    labels: Mapping[str, Any],
    *,
    atol: float = 1e-5,
) -> dict[str, Any]:
    """Fit ``encoder`` on ``features``/``labels`` (``{domain: tensor}``) and check what a
    run checks: ``dim`` a positive int, ``state()`` tensors + JSON metadata (no pickle
    bytes), ``transform`` giving floating, finite ``[N, dim]`` per domain; then that the
    state saved and loaded into a new instance transforms the same (within ``atol``).
    Returns each domain's vectors. Raises ``AssertionError`` naming what broke.

    Args:
        encoder: A new (unfitted) encoder.
        features: Domain name -> teacher features ``[N, F]``.
        labels: Domain name -> class indices ``[N]``.
        atol: How far the restored encoder's vectors may be from the original's.

    Returns:
        Domain name -> its knowledge vectors ``[N, dim]``.

    Raises:
        AssertionError: A contract is broken (the message a run would print).

    Examples:
        >>> import torch
        >>> from cdkd_core.plugin_api import check_encoder
        >>> from cdkd_core.testing import make_host
        >>> pca = make_host().get("encoders", "pca").from_params({"dim": 2})
        >>> features = {"a": torch.randn(30, 6), "b": torch.randn(20, 6)}
        >>> labels = {"a": torch.arange(30) % 3, "b": torch.arange(20) % 2}
        >>> vectors = check_encoder(pca, features, labels)
        >>> {domain: tuple(v.shape) for domain, v in vectors.items()}
        {'a': (30, 2), 'b': (20, 2)}
    """
    from cdkd_core.components import contracts

    def run() -> dict[str, Any]:
        encoder.fit(dict(features), dict(labels))
        contracts.check_encoder_dim(encoder)
        contracts.check_encoder_state(encoder)
        vectors = _encoder_vectors(encoder, features)
        _encoder_restores(encoder, features, vectors, atol)
        return vectors

    return _asserting(run)


def _fitted_encoder(
    encoder: Any,
    features: Mapping[str, Any] | None = None,
    labels: Mapping[str, Any] | None = None,
    **_: Any,
) -> tuple[Any, Mapping[str, Any]]:
    """A fresh copy of ``encoder`` fitted on ``features``/``labels`` (default: the sample
    ones), and the features."""
    if features is None or labels is None:
        features, labels = _sample_features()
    fitted = _fresh(encoder)
    fitted.fit(dict(features), dict(labels))
    return fitted, features


def _check_encoder_dim(encoder: Any, **options: Any) -> None:
    from cdkd_core.components import contracts

    contracts.check_encoder_dim(_fitted_encoder(encoder, **options)[0])


def _check_encoder_state(encoder: Any, **options: Any) -> None:
    from cdkd_core.components import contracts

    contracts.check_encoder_state(_fitted_encoder(encoder, **options)[0])


def _check_transform_output(encoder: Any, **options: Any) -> None:
    _encoder_vectors(*_fitted_encoder(encoder, **options))


def _check_state_restores_transform(encoder: Any, *, atol: float = 1e-5, **options: Any) -> None:
    fitted, features = _fitted_encoder(encoder, **options)
    _encoder_restores(fitted, features, _encoder_vectors(fitted, features), atol)
