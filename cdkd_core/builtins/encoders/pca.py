"""The ``pca`` encoder: principal components of the pooled teacher features."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field

from cdkd_core.builtins.encoders.fitting import (
    EPS,
    FittedEncoder,
    check_pooled,
    column_signs,
    pooled_chunks,
    rowwise,
    stack_pooled,
)
from cdkd_core.components.base import ComponentConfig


class PCAEncoder(FittedEncoder):
    """Principal component analysis of the pooled teacher features (Pearson 1901; Hotelling 1933).

    Fits ``sklearn.decomposition.PCA`` (exact SVD) on the centred features of all domains,
    fixes each component's sign so its largest-magnitude entry is positive and maps
    ``x -> (x - mean) @ components.T``, divided by ``sqrt(explained_variance)`` when
    whitening. ``dim`` is capped at ``min(n_samples, n_features)``, with a warning. Beyond
    ``incremental_above`` pooled rows it fits ``sklearn.decomposition.IncrementalPCA``
    (Ross et al. 2008) chunk by chunk instead, never holding the pooled features in RAM.
    """

    name: ClassVar[str] = "pca"

    class Config(ComponentConfig):
        """Parameters of :class:`PCAEncoder`."""

        dim: int = Field(32, ge=1, description="Number of principal components kept.")
        whiten: bool = Field(
            False, description="Divide each component by its standard deviation (unit variance)."
        )
        incremental_above: int | None = Field(
            20_000,
            ge=1,
            description=(
                "Fit incrementally (IncrementalPCA, in chunks) when the pooled features have "
                "more rows than this; null: always the exact SVD."
            ),
        )
        incremental_batch: int = Field(
            10_000,
            ge=2,
            description="Rows per chunk of the incremental fit (at least dim are used).",
        )

    config: Config

    def __init__(self, config: ComponentConfig | None = None) -> None:
        super().__init__(config)
        self._dim = self.config.dim
        self._whiten = self.config.whiten

    @property
    def dim(self) -> int:
        """Number of components (capped at fit time)."""
        return self._dim

    def fit(self, features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> None:
        """Fit PCA on all domains' features concatenated (incrementally when large)."""
        n, f = check_pooled(features, labels)
        dim = min(self.config.dim, n, f)
        if dim < self.config.dim:
            import warnings

            warnings.warn(
                f"encoder 'pca': dim {self.config.dim} asked, but the pooled teacher features "
                f"({n} training examples x {f} features) allow at most {dim} components; "
                f"using dim {dim}",
                stacklevel=2,
            )
        limit = self.config.incremental_above
        if limit is not None and n > limit:
            pca = self._fit_incremental(features, dim)
        else:
            from sklearn.decomposition import PCA

            x, _, _, _ = stack_pooled(features, labels)
            pca = PCA(n_components=dim, whiten=False, svd_solver="full").fit(x.numpy())
        components = torch.from_numpy(pca.components_.copy())  # [dim, F]
        components = components * column_signs(components.T).unsqueeze(1)
        variance = torch.from_numpy(pca.explained_variance_.copy())
        self._mean = torch.from_numpy(pca.mean_.copy())
        self._components = components
        self._variance = variance
        self._scale = self._whitening_scale(variance)
        self._ratio = [float(r) for r in pca.explained_variance_ratio_]
        self._dim = dim
        self._whiten = self.config.whiten
        self._fitted = True

    def _fit_incremental(self, features: dict[str, torch.Tensor], dim: int):
        """``IncrementalPCA`` fitted on the pooled features chunk by chunk (each chunk has
        at least ``dim`` rows, as each partial fit needs)."""
        from sklearn.decomposition import IncrementalPCA

        rows = max(self.config.incremental_batch, dim)
        pca = IncrementalPCA(n_components=dim, whiten=False)
        for chunk in pooled_chunks(features, rows, min_rows=dim):
            pca.partial_fit(chunk)
        return pca

    @staticmethod
    def _whitening_scale(variance: torch.Tensor) -> torch.Tensor:
        """``sqrt(variance)``, with 1 where the variance is (numerically) zero."""
        tiny = EPS * max(float(variance.max()), 1.0) if variance.numel() else EPS
        return torch.where(variance > tiny, variance.clamp_min(0).sqrt(), 1.0)

    @property
    def explained_variance_ratio(self) -> list[float]:
        """Fraction of the total variance carried by each kept component."""
        self._check_fitted()
        return list(self._ratio)

    def transform(self, features: torch.Tensor, domain: str) -> torch.Tensor:
        """Project onto the principal components (the domain does not matter)."""
        self._check_fitted()

        def project(x: torch.Tensor) -> torch.Tensor:
            dev = x.device
            z = (x - self._mean.to(dev)) @ self._components.to(dev).T
            return z / self._scale.to(dev) if self._whiten else z

        return rowwise(features, self._mean.shape[0], project)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Mean, components, explained variance and whitening scale; ratio in the metadata."""
        self._check_fitted()
        tensors = {
            "mean": self._mean,
            "components": self._components,
            "explained_variance": self._variance,
            "scale": self._scale,
        }
        meta = {
            "dim": self._dim,
            "whiten": self._whiten,
            "explained_variance_ratio": list(self._ratio),
        }
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""
        self._mean = tensors["mean"].to(torch.float64)
        self._components = tensors["components"].to(torch.float64)
        self._variance = tensors["explained_variance"].to(torch.float64)
        self._scale = tensors["scale"].to(torch.float64)
        self._dim = int(meta["dim"])
        self._whiten = bool(meta["whiten"])
        self._ratio = [float(r) for r in meta["explained_variance_ratio"]]
        self._fitted = True
