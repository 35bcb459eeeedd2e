"""The ``linear`` encoder: a supervised linear projection (PLS or ridge) onto the classes."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from cdkd_core.builtins.encoders.fitting import (
    EPS,
    FittedEncoder,
    column_signs,
    column_std,
    rowwise,
    stack_pooled,
)
from cdkd_core.components.base import ComponentConfig


class LinearEncoder(FittedEncoder):
    """Supervised linear projection onto (domain, class) indicators: PLS-DA or reduced-rank ridge.

    Targets are one-hot over every ``(domain, class)`` pair, so domains' label spaces stay
    apart. ``pls`` is PLS-DA (Wold et al. 2001; Barker & Rayens 2003) via
    ``sklearn.cross_decomposition.PLSRegression``, mapped as ``((x - mean) / std) @
    x_rotations``. ``ridge`` is reduced-rank ridge regression (Mukherjee & Zhu 2011): the
    closed-form ridge solution ``W = (Xs^T Xs + alpha I)^-1 Xs^T Y`` followed by the top
    right singular vectors ``V`` of the fitted values ``Xs W``, mapped as ``Xs @ (W V)``.
    Each projection column's largest-magnitude entry is made positive.
    """

    name: ClassVar[str] = "linear"

    class Config(ComponentConfig):
        """Parameters of :class:`LinearEncoder`."""

        method: Literal["pls", "ridge"] = Field(
            "pls", description="'pls' (PLS-DA) or 'ridge' (reduced-rank ridge regression)."
        )
        dim: int = Field(32, ge=1, description="Size of the projected space.")
        alpha: float = Field(1.0, gt=0, description="Ridge penalty strength (method 'ridge').")
        scale: bool = Field(
            True, description="Standardise features to unit variance (features are always centred)."
        )

    config: Config

    def __init__(self, config: ComponentConfig | None = None) -> None:
        super().__init__(config)
        self._dim = self.config.dim

    @property
    def dim(self) -> int:
        """Size of the projection (capped at fit time)."""
        return self._dim

    @property
    def pair_names(self) -> list[str]:
        """The ``"domain:class"`` targets the projection was fitted on."""
        self._check_fitted()
        return list(self._names)

    def fit(self, features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> None:
        """Fit the projection on all domains with one-hot (domain, class) targets."""
        x, pairs, names, _ = stack_pooled(features, labels)
        y = torch.nn.functional.one_hot(pairs, num_classes=len(names)).to(torch.float64)
        if self.config.method == "pls":
            self._fit_pls(x, y)
        else:
            self._fit_ridge(x, y)
        self._names = names
        self._method = self.config.method
        self._fitted = True

    def _fit_pls(self, x: torch.Tensor, y: torch.Tensor) -> None:
        import warnings

        from sklearn.cross_decomposition import PLSRegression

        n, f = x.shape
        # Centred X has rank <= n - 1: more components would deflate X to zero (0/0).
        dim = max(1, min(self.config.dim, y.shape[1], f, n - 1))
        pls = PLSRegression(n_components=dim, scale=self.config.scale, max_iter=5000, tol=1e-14)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "y residual is constant"
            pls.fit(x.numpy(), y.numpy())
        rotations = torch.from_numpy(pls.x_rotations_.copy())
        keep = torch.isfinite(rotations).all(0) & (rotations.norm(dim=0) > EPS)
        if not bool(keep.any()):
            raise ValueError("PLS found no component: are the features constant?")
        rotations = rotations[:, keep]
        self._mean = torch.from_numpy(pls._x_mean.copy())
        self._std = torch.from_numpy(pls._x_std.copy())
        self._projection = rotations * column_signs(rotations)
        self._coef = None
        self._dim = self._projection.shape[1]

    def _fit_ridge(self, x: torch.Tensor, y: torch.Tensor) -> None:
        n, f = x.shape
        mean = x.mean(dim=0)
        std = column_std(x, ddof=1) if self.config.scale else torch.ones(f, dtype=torch.float64)
        xs = (x - mean) / std
        gram = xs.T @ xs + self.config.alpha * torch.eye(f, dtype=torch.float64)
        coef = torch.linalg.solve(gram, xs.T @ y)  # [F, P]
        fitted = xs @ coef  # centred, since xs is
        fitted = fitted - fitted.mean(dim=0)
        _, _, vh = torch.linalg.svd(fitted, full_matrices=False)
        # The centred indicator targets have rank P - 1, so the fitted values do too (and
        # rank <= n - 1, <= F): further singular directions would be arbitrary.
        dim = max(1, min(self.config.dim, y.shape[1] - 1, f, n - 1))
        projection = coef @ vh[:dim].T
        self._mean = mean
        self._std = std
        self._projection = projection * column_signs(projection)
        self._coef = coef
        self._dim = dim

    def transform(self, features: torch.Tensor, domain: str) -> torch.Tensor:
        """Project standardised features (the domain does not matter)."""
        self._check_fitted()

        def project(x: torch.Tensor) -> torch.Tensor:
            dev = x.device
            xs = (x - self._mean.to(dev)) / self._std.to(dev)
            return xs @ self._projection.to(dev)

        return rowwise(features, self._mean.shape[0], project)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Mean, std, projection (and ridge coefficients); method and pair names as metadata."""
        self._check_fitted()
        tensors = {"mean": self._mean, "std": self._std, "projection": self._projection}
        if self._coef is not None:
            tensors["coef"] = self._coef
        meta = {"method": self._method, "dim": self._dim, "pair_names": list(self._names)}
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""
        self._mean = tensors["mean"].to(torch.float64)
        self._std = tensors["std"].to(torch.float64)
        self._projection = tensors["projection"].to(torch.float64)
        coef = tensors.get("coef")
        self._coef = None if coef is None else coef.to(torch.float64)
        self._method = str(meta["method"])
        self._dim = int(meta["dim"])
        self._names = [str(n) for n in meta["pair_names"]]
        self._fitted = True
