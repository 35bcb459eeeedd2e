"""The ``graph`` encoder: a spectral embedding of a class-aware neighbour graph."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field

from cdkd_core.builtins.encoders.fitting import (
    CHUNK,
    EPS,
    FittedEncoder,
    column_signs,
    column_std,
    rowwise,
    stack_pooled,
)
from cdkd_core.components.base import ComponentConfig


class GraphEncoder(FittedEncoder):
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
        x, pairs, names, counts = stack_pooled(features, labels)
        if self.config.standardize:
            mean, std = x.mean(dim=0), column_std(x, ddof=0)
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
        sigma = near[:, -1].sqrt().clamp_min(EPS)
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
        phi = phi * column_signs(phi)

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
        unit = prototypes / prototypes.norm(dim=1, keepdim=True).clamp_min(EPS)
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
        safe = torch.where(lam >= 0, lam.clamp_min(EPS), lam.clamp_max(-EPS))
        out = []
        for start in range(0, xs.shape[0], CHUNK):
            d2 = self._sq_dist(xs[start : start + CHUNK], nodes)
            near, idx = torch.topk(d2, self._k, dim=1, largest=False, sorted=True)
            sigma_x = near[:, -1:].sqrt().clamp_min(EPS)
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

        return rowwise(features, self._mean.shape[0], embed)

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
