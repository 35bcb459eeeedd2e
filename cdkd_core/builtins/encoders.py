"""Built-in knowledge encoders: PCA, a supervised linear projection and a spectral graph.

All three are fitted on the train-split teacher trunk features of every domain at once
(concatenated in sorted domain order), are deterministic, compute in float64 and return
float32 knowledge vectors. Label spaces of different domains are kept apart by indexing
classes as ``(domain, class)`` pairs named ``"domain:class"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from cdkd_core.components.base import ComponentConfig
from cdkd_core.components.encoder import KnowledgeEncoder
from cdkd_core.data.scratch import row_chunks, rows_per_chunk
from cdkd_core.host.hookspecs import Register, hookimpl

_EPS = 1e-12
_CHUNK = 1024


# --------------------------------------------------------------------------- helpers


def _check_pooled(
    features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]
) -> tuple[int, int]:
    """Check the domains' features ``[N, F]`` and labels ``[N]`` agree (shapes only: no
    copy); returns the pooled row count and the feature width."""
    if not features:
        raise ValueError("fit needs the features of at least one domain")
    if set(features) != set(labels):
        raise ValueError(
            f"features and labels name different domains: {sorted(features)} vs {sorted(labels)}"
        )
    width: int | None = None
    total = 0
    for domain in sorted(features):
        x, y = features[domain], labels[domain].reshape(-1)
        if x.ndim != 2:
            raise ValueError(f"features of {domain!r} must be [N, F], got {tuple(x.shape)}")
        if width is None:
            width = x.shape[1]
        elif x.shape[1] != width:
            raise ValueError(
                f"features of {domain!r} have width {x.shape[1]}, other domains have {width}"
            )
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"{domain!r} has {x.shape[0]} feature rows but {y.shape[0]} labels")
        if y.numel() and int(y.min()) < 0:
            raise ValueError(f"labels of {domain!r} must be non-negative class indices")
        total += x.shape[0]
    if total < 2:
        raise ValueError("fit needs at least 2 samples")
    assert width is not None
    return total, width


def _stack(
    features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, list[str], list[int]]:
    """Concatenate domains in sorted order.

    Returns the float64 features ``[N, F]``, the ``(domain, class)`` pair index of each
    sample ``[N]``, the pair names ``"domain:class"`` and the per-domain sample counts.
    """
    _check_pooled(features, labels)
    blocks: list[torch.Tensor] = []
    pair_index: list[torch.Tensor] = []
    names: list[str] = []
    counts: list[int] = []
    for domain in sorted(features):
        x = features[domain].detach().to("cpu", torch.float64)
        y = labels[domain].detach().to("cpu").long().reshape(-1)
        classes = torch.unique(y)  # sorted
        local = torch.searchsorted(classes, y)
        pair_index.append(local + len(names))
        names.extend(f"{domain}:{int(c)}" for c in classes)
        blocks.append(x)
        counts.append(x.shape[0])
    return torch.cat(blocks), torch.cat(pair_index), names, counts


def _pooled_chunks(
    features: dict[str, torch.Tensor], rows: int, min_rows: int
) -> Iterator[np.ndarray]:
    """The domains' features concatenated in sorted order, as float64 arrays of ``rows``
    rows (the last one merged into the one before when it would be under ``min_rows``),
    read piece by piece: the pooled features are never copied whole."""
    blocks = [features[d].detach() for d in sorted(features)]
    total = sum(len(b) for b in blocks)
    starts = list(range(0, total, rows))
    if len(starts) > 1 and total - starts[-1] < min_rows:
        starts.pop()
    ends = [*starts[1:], total]
    offsets = [0]
    for b in blocks:
        offsets.append(offsets[-1] + len(b))
    for start, end in zip(starts, ends, strict=True):
        pieces = []
        for b, lo in zip(blocks, offsets, strict=False):
            a, z = max(start, lo), min(end, lo + len(b))
            if a < z:
                pieces.append(b[a - lo : z - lo].to("cpu", torch.float64))
        yield torch.cat(pieces).numpy()


def _column_signs(matrix: torch.Tensor) -> torch.Tensor:
    """Signs that make the largest-magnitude entry of each column of ``matrix`` positive."""
    rows = matrix.abs().argmax(dim=0)
    picked = matrix.gather(0, rows.unsqueeze(0)).squeeze(0)
    return torch.where(picked < 0, -1.0, 1.0).to(matrix.dtype)


def _as_input(features: torch.Tensor, n_features: int) -> torch.Tensor:
    """Validate a ``[N, F]`` batch and cast it to float64."""
    if features.ndim != 2 or features.shape[1] != n_features:
        raise ValueError(
            f"expected features of shape [N, {n_features}], got {tuple(features.shape)}"
        )
    return features.detach().to(torch.float64)


def _rowwise(
    features: torch.Tensor, n_features: int, fn: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``fn`` (float64 rows -> float64 rows) applied to ``features`` as float32; in chunks
    of :data:`~cdkd_core.data.scratch.CHUNK_BYTES` when larger, never casting all of it."""
    x = features.detach()
    rows = rows_per_chunk(x) if x.ndim == 2 else len(x)
    if x.ndim != 2 or len(x) <= rows:
        return fn(_as_input(x, n_features)).to(torch.float32)
    out = None
    for chunk in row_chunks(len(x), rows):
        z = fn(_as_input(x[chunk], n_features)).to(torch.float32)
        if out is None:
            out = torch.empty(len(x), z.shape[1], dtype=torch.float32, device=z.device)
        out[chunk] = z
    assert out is not None
    return out


def _std(x: torch.Tensor, ddof: int) -> torch.Tensor:
    """Column standard deviation; zero deviations become 1 (constant columns are left as is)."""
    std = x.std(dim=0, correction=ddof)
    return torch.where(std == 0, torch.ones_like(std), std)


class _FittedEncoder(KnowledgeEncoder):
    """An encoder that refuses to transform before it is fitted or loaded."""

    _fitted: bool = False

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit or load first")


# --------------------------------------------------------------------------- PCA


class PCAEncoder(_FittedEncoder):
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
        n, f = _check_pooled(features, labels)
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

            x, _, _, _ = _stack(features, labels)
            pca = PCA(n_components=dim, whiten=False, svd_solver="full").fit(x.numpy())
        components = torch.from_numpy(pca.components_.copy())  # [dim, F]
        components = components * _column_signs(components.T).unsqueeze(1)
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
        for chunk in _pooled_chunks(features, rows, min_rows=dim):
            pca.partial_fit(chunk)
        return pca

    @staticmethod
    def _whitening_scale(variance: torch.Tensor) -> torch.Tensor:
        """``sqrt(variance)``, with 1 where the variance is (numerically) zero."""
        tiny = _EPS * max(float(variance.max()), 1.0) if variance.numel() else _EPS
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

        return _rowwise(features, self._mean.shape[0], project)

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


# --------------------------------------------------------------------------- linear


class LinearEncoder(_FittedEncoder):
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
        x, pairs, names, _ = _stack(features, labels)
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
        keep = torch.isfinite(rotations).all(0) & (rotations.norm(dim=0) > _EPS)
        if not bool(keep.any()):
            raise ValueError("PLS found no component: are the features constant?")
        rotations = rotations[:, keep]
        self._mean = torch.from_numpy(pls._x_mean.copy())
        self._std = torch.from_numpy(pls._x_std.copy())
        self._projection = rotations * _column_signs(rotations)
        self._coef = None
        self._dim = self._projection.shape[1]

    def _fit_ridge(self, x: torch.Tensor, y: torch.Tensor) -> None:
        n, f = x.shape
        mean = x.mean(dim=0)
        std = _std(x, ddof=1) if self.config.scale else torch.ones(f, dtype=torch.float64)
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
        self._projection = projection * _column_signs(projection)
        self._coef = coef
        self._dim = dim

    def transform(self, features: torch.Tensor, domain: str) -> torch.Tensor:
        """Project standardised features (the domain does not matter)."""
        self._check_fitted()

        def project(x: torch.Tensor) -> torch.Tensor:
            dev = x.device
            xs = (x - self._mean.to(dev)) / self._std.to(dev)
            return xs @ self._projection.to(dev)

        return _rowwise(features, self._mean.shape[0], project)

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


# --------------------------------------------------------------------------- graph


class GraphEncoder(_FittedEncoder):
    """k-NN similarity graph with a spectral embedding (Laplacian eigenmaps, Belkin & Niyogi 2003).

    Nodes are (a stratified subsample of) the training samples. Each node is joined to its
    ``k`` nearest nodes, itself included, with the self-tuning kernel
    ``w_ij = exp(-d_ij^2 / (sigma_i sigma_j))`` (Zelnik-Manor & Perona 2004; ``sigma_i`` the
    distance to the k-th neighbour), symmetrised by ``max``. With degrees ``D`` and
    ``A = D^-1/2 W D^-1/2``, the top non-trivial eigenpairs ``(lambda, u)`` of ``A`` give the
    node embedding ``phi = D^-1/2 u``: eigenvectors of the random walk ``P = D^-1 W``
    (diffusion-map style, Coifman & Lafon 2006). New points are embedded by the Nyström
    extension (Bengio et al. 2004): ``phi(x) = (1/lambda) sum_j p_j phi_j`` over ``x``'s k
    nearest nodes with ``p_j`` its normalised kernel weights. It also gives a class graph
    over ``(domain, class)`` prototypes weighted by cosine similarity.
    """

    name: ClassVar[str] = "graph"
    provides: ClassVar[frozenset[str]] = frozenset({"vectors", "graph"})

    class Config(ComponentConfig):
        """Parameters of :class:`GraphEncoder`."""

        dim: int = Field(16, ge=1, description="Number of non-trivial eigenvectors kept.")
        neighbors: int = Field(
            10, ge=2, description="Neighbours per node in the k-NN graph, the node itself included."
        )
        max_nodes: int = Field(
            4000,
            ge=2,
            description="Most graph nodes; larger training sets are subsampled evenly per domain.",
        )
        standardize: bool = Field(
            True, description="z-score features with the training mean and std before distances."
        )

    config: Config

    def __init__(self, config: ComponentConfig | None = None) -> None:
        super().__init__(config)
        self._dim = self.config.dim

    @property
    def dim(self) -> int:
        """Embedding size (capped at ``n_nodes - 1`` at fit time)."""
        return self._dim

    # ---- fitting

    @staticmethod
    def _subsample(counts: list[int], max_nodes: int) -> torch.Tensor:
        """Indices of an evenly spaced subsample, quotas proportional to the domain sizes."""
        total = sum(counts)
        if total <= max_nodes:
            return torch.arange(total)
        exact = [max_nodes * c / total for c in counts]
        quota = [int(e) for e in exact]
        order = sorted(range(len(counts)), key=lambda i: (-(exact[i] - quota[i]), i))
        for i in order[: max_nodes - sum(quota)]:
            quota[i] += 1
        picked: list[torch.Tensor] = []
        start = 0
        for count, q in zip(counts, quota, strict=True):
            if q:
                picked.append(start + torch.div(torch.arange(q) * count, q, rounding_mode="floor"))
            start += count
        return torch.cat(picked)

    def _sq_dist(self, x: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
        """Squared Euclidean distances ``[len(x), len(nodes)]`` (float64, clamped at 0)."""
        d2 = (x * x).sum(1, keepdim=True) + (nodes * nodes).sum(1) - 2.0 * (x @ nodes.T)
        return d2.clamp_min(0.0)

    def fit(self, features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> None:
        """Build the k-NN graph over the training samples and its spectral embedding."""
        x, pairs, names, counts = _stack(features, labels)
        if self.config.standardize:
            mean, std = x.mean(dim=0), _std(x, ddof=0)
        else:
            mean, std = (
                torch.zeros(x.shape[1], dtype=x.dtype),
                torch.ones(x.shape[1], dtype=x.dtype),
            )
        xs = (x - mean) / std
        chosen = self._subsample(counts, self.config.max_nodes)
        nodes = xs[chosen]
        n = nodes.shape[0]
        k = min(self.config.neighbors, n)
        dim = min(self.config.dim, n - 1)

        d2 = self._sq_dist(nodes, nodes)
        d2.fill_diagonal_(0.0)
        select = d2.clone()
        select.fill_diagonal_(-1.0)  # each node is its own first neighbour, even with duplicates
        idx = torch.topk(select, k, dim=1, largest=False, sorted=True).indices
        near = d2.gather(1, idx)
        sigma = near[:, -1].sqrt().clamp_min(_EPS)
        weights = torch.exp(-near / (sigma.unsqueeze(1) * sigma[idx]))
        w = torch.zeros_like(d2).scatter_(1, idx, weights)
        w = torch.maximum(w, w.T)
        degree = w.sum(dim=1)
        inv_sqrt = degree.rsqrt()
        a = inv_sqrt.unsqueeze(1) * w * inv_sqrt.unsqueeze(0)
        a = 0.5 * (a + a.T)
        # The trivial eigenvector sqrt(D) 1 (eigenvalue 1) is deflated to eigenvalue -3, below
        # the spectrum [-1, 1]; this drops it even when the graph is disconnected.
        trivial = degree.sqrt() / degree.sqrt().norm()
        a = a - 4.0 * torch.outer(trivial, trivial)
        lam, u = self._top_eigenpairs(a, dim)
        phi = inv_sqrt.unsqueeze(1) * u
        phi = phi * _column_signs(phi)

        self._mean, self._std = mean, std
        self._nodes, self._sigma = nodes, sigma
        self._embedding, self._eigenvalues = phi, lam
        self._node_pairs = pairs[chosen]
        self._k, self._dim = k, dim
        self._fitted = True

        # Class prototypes: mean embedding of each (domain, class) over all training samples
        # (exact phi at nodes, Nyström elsewhere when the graph was subsampled).
        emb = torch.empty(x.shape[0], dim, dtype=torch.float64)
        is_node = torch.zeros(x.shape[0], dtype=torch.bool)
        is_node[chosen] = True
        emb[chosen] = phi
        rest = torch.nonzero(~is_node).squeeze(1)
        if rest.numel():
            emb[rest] = self._nystrom(xs[rest])
        sums = torch.zeros(len(names), dim, dtype=torch.float64).index_add_(0, pairs, emb)
        sizes = torch.bincount(pairs, minlength=len(names)).to(torch.float64)
        prototypes = sums / sizes.clamp_min(1.0).unsqueeze(1)
        unit = prototypes / prototypes.norm(dim=1, keepdim=True).clamp_min(_EPS)
        self._prototypes = prototypes
        self._class_weights = unit @ unit.T
        self._names = names

    @staticmethod
    def _top_eigenpairs(a: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``dim`` largest eigenvalues (descending) of symmetric ``a`` and eigenvectors."""
        import scipy.linalg

        n = a.shape[0]
        lam, u = scipy.linalg.eigh(a.numpy(), subset_by_index=[n - dim, n - 1], driver="evr")
        lam_t = torch.from_numpy(lam[::-1].copy())
        u_t = torch.from_numpy(u[:, ::-1].copy())
        return lam_t, u_t

    # ---- applying

    def _nystrom(self, xs: torch.Tensor) -> torch.Tensor:
        """Nyström embedding of standardised points ``[B, F]`` -> ``[B, dim]`` (float64)."""
        dev = xs.device
        nodes, sigma = self._nodes.to(dev), self._sigma.to(dev)
        phi, lam = self._embedding.to(dev), self._eigenvalues.to(dev)
        safe = torch.where(lam >= 0, lam.clamp_min(_EPS), lam.clamp_max(-_EPS))
        out = []
        for start in range(0, xs.shape[0], _CHUNK):
            d2 = self._sq_dist(xs[start : start + _CHUNK], nodes)
            near, idx = torch.topk(d2, self._k, dim=1, largest=False, sorted=True)
            sigma_x = near[:, -1:].sqrt().clamp_min(_EPS)
            w = torch.exp(-near / (sigma_x * sigma[idx]))
            p = w / w.sum(dim=1, keepdim=True)
            out.append(torch.einsum("bk,bkd->bd", p, phi[idx]) / safe)
        if not out:
            return torch.zeros(0, self._dim, dtype=torch.float64, device=dev)
        return torch.cat(out)

    def transform(self, features: torch.Tensor, domain: str) -> torch.Tensor:
        """Nyström-embed points (the domain does not matter)."""
        self._check_fitted()

        def embed(x: torch.Tensor) -> torch.Tensor:
            return self._nystrom((x - self._mean.to(x.device)) / self._std.to(x.device))

        return _rowwise(features, self._mean.shape[0], embed)

    def class_graph(self) -> tuple[list[str], torch.Tensor]:
        """Node names ``"domain:class"`` and cosine similarities ``[P, P]`` of class prototypes."""
        self._check_fitted()
        return list(self._names), self._class_weights.to(torch.float32)

    @property
    def prototypes(self) -> torch.Tensor:
        """Mean spectral embedding of each ``(domain, class)`` pair ``[P, dim]``."""
        self._check_fitted()
        return self._prototypes.to(torch.float32)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Graph nodes, sigmas, eigenpairs, standardisation, prototypes and class graph."""
        self._check_fitted()
        tensors = {
            "mean": self._mean,
            "std": self._std,
            "nodes": self._nodes,
            "sigma": self._sigma,
            "embedding": self._embedding,
            "eigenvalues": self._eigenvalues,
            "node_pairs": self._node_pairs,
            "prototypes": self._prototypes,
            "class_weights": self._class_weights,
        }
        meta = {"dim": self._dim, "neighbors": self._k, "pair_names": list(self._names)}
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""
        f64 = torch.float64
        self._mean, self._std = tensors["mean"].to(f64), tensors["std"].to(f64)
        self._nodes, self._sigma = tensors["nodes"].to(f64), tensors["sigma"].to(f64)
        self._embedding = tensors["embedding"].to(f64)
        self._eigenvalues = tensors["eigenvalues"].to(f64)
        self._node_pairs = tensors["node_pairs"].long()
        self._prototypes = tensors["prototypes"].to(f64)
        self._class_weights = tensors["class_weights"].to(f64)
        self._dim, self._k = int(meta["dim"]), int(meta["neighbors"])
        self._names = [str(n) for n in meta["pair_names"]]
        self._fitted = True


@hookimpl
def register_encoders(register: Register) -> None:
    """Register the built-in encoders."""
    register(PCAEncoder)
    register(LinearEncoder)
    register(GraphEncoder)

    from cdkd_core.builtins.knowledge_graph import KnowledgeGraphEncoder

    register(KnowledgeGraphEncoder)
