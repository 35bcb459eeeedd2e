"""The ``knowledge_graph`` encoder (a class graph over every domain) and its ``graph_match`` loss.

The encoder gives PCA knowledge vectors (it wraps the ``pca`` encoder) and a graph whose
nodes are the ``(domain, class)`` pairs of every trained domain, named ``"domain:class"``.
A node's prototype is the mean knowledge vector of its class over the labelled train rows;
edges are weighted by the cosine similarity of prototypes, cross-domain edges included.
The loss makes the cosine similarities between the student's own class prototypes (its
features projected to the encoder's ``dim``, as ``hint`` does) reproduce the graph's.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from cdkd_core.builtins.encoders.fitting import FittedEncoder
from cdkd_core.builtins.encoders.pca import PCAEncoder
from cdkd_core.builtins.losses import knowledge_projector
from cdkd_core.components.base import ComponentConfig
from cdkd_core.components.encoder import KnowledgeEncoder
from cdkd_core.components.loss import BatchContext, Loss
from cdkd_core.host.hookspecs import Register, hookimpl

_EPS = 1e-12


# --------------------------------------------------------------------------- graph maths


def class_prototypes(
    vectors: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The classes present in ``labels`` ``[N]`` (sorted, negatives ignored) and the mean of
    ``vectors`` ``[N, k]`` over each class's rows ``[C, k]`` (differentiable)."""
    keep = labels >= 0
    labels, vectors = labels[keep], vectors[keep]
    classes, inverse = torch.unique(labels, sorted=True, return_inverse=True)
    sums = torch.zeros(len(classes), vectors.shape[1], dtype=vectors.dtype, device=vectors.device)
    sums = sums.index_add(0, inverse, vectors)
    counts = torch.bincount(inverse, minlength=len(classes)).to(vectors.dtype)
    return classes, sums / counts.unsqueeze(1)


def cosine_matrix(x: torch.Tensor) -> torch.Tensor:
    """``[P, P]`` cosine similarities between the rows of ``x`` (a zero row gives 0),
    clamped to ``[-1, 1]`` (rounding would otherwise put opposite vectors just below -1)."""
    unit = x / x.norm(dim=1, keepdim=True).clamp_min(_EPS)
    return (unit @ unit.T).clamp(-1.0, 1.0)


def edge_mask(similarity: torch.Tensor, top_k: int | None, min_weight: float) -> torch.Tensor:
    """``[P, P]`` boolean, true on the edges ``(i, j)``, ``i != j``, where ``j`` is among
    ``i``'s ``top_k`` most similar nodes or ``i`` among ``j``'s (symmetric k-NN union;
    ``None``: every pair) and the similarity is at least ``min_weight``."""
    p = similarity.shape[0]
    off = ~torch.eye(p, dtype=torch.bool, device=similarity.device)
    keep = off.clone()
    if top_k is not None and top_k < p - 1:
        scores = similarity.masked_fill(~off, -torch.inf)
        idx = torch.topk(scores, top_k, dim=1).indices
        knn = torch.zeros_like(off).scatter_(1, idx, True)
        keep = (knn | knn.T) & off
    return keep & (similarity >= min_weight)


# --------------------------------------------------------------------------- encoder


class KnowledgeGraphEncoder(FittedEncoder):
    """PCA knowledge vectors plus a class graph over every domain's ``(domain, class)`` pairs.

    Vectors: exactly the ``pca`` encoder's (fitted on the source domains' train features).
    Nodes: every ``(domain, class)`` pair with labelled train rows, named ``"domain:class"``:
    all classes of the source domains and, through :meth:`add_domains`, the labelled rows
    of the target domains. Prototype ``p_c`` = mean knowledge vector of the class's
    labelled train rows (minus the domain's mean over its labelled rows with
    ``center: domain``). Similarity ``S_ij = cos(p_i, p_j)``; edges ``A_ij = S_ij`` for
    ``i != j`` kept by :func:`edge_mask` (``top_k`` symmetric nearest neighbours, weight at
    least ``min_weight``), within and across domains.
    """

    name: ClassVar[str] = "knowledge_graph"
    provides: ClassVar[frozenset[str]] = frozenset({"vectors", "graph"})

    class Config(ComponentConfig):
        """Parameters of :class:`KnowledgeGraphEncoder`."""

        dim: int = Field(32, ge=1, description="Size of the PCA knowledge vectors.")
        whiten: bool = Field(False, description="Whiten the PCA components (unit variance).")
        top_k: int | None = Field(
            None,
            ge=1,
            description=(
                "Keep an edge i-j when j is among i's top_k most similar nodes or i among "
                "j's; null: every pair is an edge."
            ),
        )
        center: Literal["global", "domain"] = Field(
            "global",
            description=(
                "'global': prototypes are the class means of the knowledge vectors; 'domain': "
                "each domain's mean (over its labelled rows) is subtracted first, so edges "
                "compare classes relative to their domain rather than the domains' offsets."
            ),
        )
        min_weight: float = Field(
            -1.0,
            ge=-1.0,
            le=1.0,
            allow_inf_nan=False,
            description="Drop edges whose cosine similarity is below this (-1: none dropped).",
        )

    config: Config

    def __init__(self, config: ComponentConfig | None = None) -> None:
        super().__init__(config)
        self._pca = PCAEncoder(PCAEncoder.Config(dim=self.config.dim, whiten=self.config.whiten))
        self._names: list[str] = []
        self._protos = torch.zeros(0, 0, dtype=torch.float64)

    @property
    def dim(self) -> int:
        """Size of the knowledge vectors (capped at fit time, as ``pca``'s)."""
        return self._pca.dim

    def fit(self, features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> None:
        """Fit PCA on all domains' features, then the graph over their classes."""
        self._pca.fit(features, labels)
        self._names, self._protos = [], torch.zeros(0, self._pca.dim, dtype=torch.float64)
        self._fitted = True
        self.add_domains(features, labels)

    def add_domains(
        self, features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]
    ) -> None:
        """Add (or replace) the class nodes of ``features``' domains: rows with a label
        ``>= 0`` count; the vectors stay as fitted."""
        self._check_fitted()
        names = list(self._names)
        protos = [self._protos[i] for i in range(len(names))]
        for domain in sorted(features):
            y = labels[domain].detach().cpu().long().reshape(-1)
            if not bool((y >= 0).any()):
                continue
            z = self._pca.transform(features[domain], domain).to(torch.float64)
            classes, means = class_prototypes(z, y)
            if self.config.center == "domain":
                means = means - z[y >= 0].mean(dim=0)
            keep = [i for i, n in enumerate(names) if n.rsplit(":", 1)[0] != domain]
            names = [names[i] for i in keep]
            protos = [protos[i] for i in keep]
            names += [f"{domain}:{int(c)}" for c in classes]
            protos += list(means)
        order = sorted(range(len(names)), key=lambda i: node_key(names[i]))
        self._names = [names[i] for i in order]
        dim = self._pca.dim
        self._protos = (
            torch.stack([protos[i] for i in order])
            if order
            else torch.zeros(0, dim, dtype=torch.float64)
        )
        self._similarity = cosine_matrix(self._protos)
        self._edges = edge_mask(self._similarity, self.config.top_k, self.config.min_weight)

    def transform(self, features: torch.Tensor, domain: str) -> torch.Tensor:
        """The ``pca`` knowledge vectors."""
        self._check_fitted()
        return self._pca.transform(features, domain)

    # ---- the graph

    @property
    def node_names(self) -> list[str]:
        """Node names ``"domain:class"``, sorted by domain then class index."""
        self._check_fitted()
        return list(self._names)

    @property
    def prototypes(self) -> torch.Tensor:
        """Class prototypes ``[P, dim]`` (mean knowledge vector of each node's class)."""
        self._check_fitted()
        return self._protos.to(torch.float32)

    @property
    def similarity(self) -> torch.Tensor:
        """Dense cosine similarities of the prototypes ``[P, P]``."""
        self._check_fitted()
        return self._similarity.to(torch.float32)

    @property
    def centering(self) -> str:
        """``"global"`` or ``"domain"`` (see the ``center`` param)."""
        return self.config.center

    @property
    def edges(self) -> torch.Tensor:
        """``[P, P]`` boolean edge mask (symmetric, false on the diagonal)."""
        self._check_fitted()
        return self._edges.clone()

    def class_graph(self) -> tuple[list[str], torch.Tensor]:
        """Node names and edge weights ``[P, P]``: the similarity on edges, 0 elsewhere."""
        self._check_fitted()
        weights = torch.where(self._edges, self._similarity, torch.zeros_like(self._similarity))
        return list(self._names), weights.to(torch.float32)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The PCA state plus prototypes, similarities and edge weights; node names,
        domains and classes in the metadata."""
        self._check_fitted()
        tensors, pca_meta = self._pca.state()
        tensors = {f"pca.{k}": v for k, v in tensors.items()}
        tensors.update(prototypes=self._protos, similarity=self._similarity, edges=self._edges)
        meta = {
            "pca": pca_meta,
            "nodes": list(self._names),
            "domains": [node_key(n)[0] for n in self._names],
            "classes": [node_key(n)[1] for n in self._names],
            "top_k": self.config.top_k,
            "min_weight": self.config.min_weight,
            "center": self.config.center,
        }
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""
        pca = {k.removeprefix("pca."): v for k, v in tensors.items() if k.startswith("pca.")}
        self._pca.load_state(pca, meta["pca"])
        f64 = torch.float64
        self._protos = tensors["prototypes"].to(f64)
        self._similarity = tensors["similarity"].to(f64)
        self._edges = tensors["edges"].to(torch.bool)
        self._names = [str(n) for n in meta["nodes"]]
        if len(self._names) != self._protos.shape[0]:
            raise ValueError(
                f"knowledge graph state has {len(self._names)} node names but "
                f"{self._protos.shape[0]} prototypes"
            )
        self._fitted = True


def node_key(name: str) -> tuple[str, int]:
    """``"domain:class"`` -> ``(domain, class)`` (domain names may contain ``:``)."""
    domain, _, cls = name.rpartition(":")
    return domain, int(cls)


# --------------------------------------------------------------------------- loss


class GraphMatchLoss(Loss):
    """Match the similarities between the student's class prototypes to the teacher's graph.

    A projector ``r`` (``Linear(F_s, k)``, or ``Linear → GELU → Linear`` with ``hidden``; as
    ``hint``'s) maps student features to the encoder's ``dim``. On a batch of domain ``d``,
    each class ``c`` with labelled rows gives a student prototype ``q_c = mean_i r(s_i)``.
    Batches hold one domain, so the prototypes of the graph's other nodes come from an
    exponential moving average memory ``m_j <- μ m_j + (1-μ) q_j`` (detached, updated after
    each training batch; ``μ = momentum``). With ``B`` the batch's nodes and ``N`` = ``B`` and
    the nodes in memory, ``c_ij = cos(q_i, q_j)`` and ``W`` the teacher's edge weights
    (``W_ij = cos(p_i, p_j)`` on edges, see ``knowledge_graph``), over the pairs
    ``E = {(i, j): i ∈ B, j ∈ N, j ≠ i, (i, j) an edge}``:

    - ``mse``: ``L = (1/|E|) Σ_{(i,j)∈E} (c_ij - W_ij)²``
    - ``kl``: ``L = (1/|B'|) Σ_{i∈B'} KL(P_T[i] ‖ P_S[i])`` with
      ``P[i, j] = softmax_{j:(i,j)∈E}(x_ij / τ)`` of ``W`` (teacher) and ``c`` (student),
      ``B'`` the batch nodes with at least one edge.

    With a ``knowledge_graph`` encoder whose ``center`` is ``domain``, the batch's mean of
    ``r(s_i)`` over its labelled rows is subtracted from its prototypes, as the teacher's
    domain mean is from its. Cross-domain pairs come in through the memory. ``None`` when
    the batch has no labelled example of a graph node, or no pair (e.g. one class and an
    empty memory).
    Needs an encoder with a class graph (``knowledge_graph``, ``graph``).
    """

    name = "graph_match"
    requires = frozenset({"graph", "labels"})

    class Config(ComponentConfig):
        """Parameters of :class:`GraphMatchLoss`."""

        method: Literal["mse", "kl"] = Field(
            "mse",
            description="'mse' between cosine similarities and edge weights; 'kl' between "
            "row-softmaxed similarities with temperature τ.",
        )
        temperature: float = Field(
            0.1, gt=0.0, allow_inf_nan=False, description="Softmax temperature τ ('kl' only)."
        )
        momentum: float = Field(
            0.9,
            ge=0.0,
            lt=1.0,
            allow_inf_nan=False,
            description="EMA momentum μ of the memory of student prototypes (0: last batch).",
        )
        memory: bool = Field(
            True,
            description="Use the memory of other nodes' prototypes (cross-domain pairs); "
            "false: only pairs of classes within the batch.",
        )
        hidden: int | None = Field(
            None, ge=1, description="Hidden width of a 2-layer MLP projector; None: linear."
        )

    config: Config

    def __init__(self, config: ComponentConfig | None = None) -> None:
        super().__init__(config)
        self.projector: nn.Module | None = None
        self.nodes: dict[tuple[str, int], int] = {}
        #: subtract the batch's mean over its labelled rows from the prototypes (set by
        #: :meth:`bind` from a ``knowledge_graph`` encoder with ``center: domain``)
        self.center_domains = False

    def setup(self, student_features: int, knowledge_dim: int | None) -> None:
        """Create the projector to the encoder's ``dim``."""
        if knowledge_dim is None:
            raise ValueError(
                "the 'graph_match' loss projects onto the knowledge space, but the encoder "
                "gives no dimension; pair it with 'knowledge_graph'"
            )
        self.projector = knowledge_projector(student_features, knowledge_dim, self.config.hidden)
        self._dim = knowledge_dim

    def bind(self, encoder: KnowledgeEncoder) -> None:
        """Take the fitted encoder's class graph (node names ``"domain:class"``, weights)."""
        graph = getattr(encoder, "class_graph", None)
        if graph is None:
            raise ValueError(
                f"the 'graph_match' loss needs a class graph; encoder {encoder.name!r} has none"
            )
        names, weights = graph()
        edges = getattr(encoder, "edges", None)  # None: every pair (the `graph` encoder's)
        self.set_graph(names, weights, edges if isinstance(edges, torch.Tensor) else None)
        self.center_domains = getattr(encoder, "centering", "global") == "domain"

    def set_graph(
        self, names: list[str], weights: torch.Tensor, edges: torch.Tensor | None = None
    ) -> None:
        """Use the teacher graph over nodes ``names`` (``"domain:class"``): ``weights``
        ``[P, P]`` on the pairs where ``edges`` is true (default: every pair ``i != j``)."""
        p = len(names)
        if tuple(weights.shape) != (p, p):
            raise ValueError(f"graph weights {tuple(weights.shape)} do not match {p} node names")
        off = ~torch.eye(p, dtype=torch.bool)
        edges = off if edges is None else edges.to("cpu", torch.bool) & off
        if self.projector is None:
            raise RuntimeError("'graph_match': call setup() before the graph is set")
        self.nodes = {node_key(n): i for i, n in enumerate(names)}
        dim = self._dim
        w = weights.detach().float()
        self.register_buffer("teacher_weights", w)
        # uint8 rather than bool: DistributedDataParallel broadcasts buffers, and not every
        # backend broadcasts bool tensors
        self.register_buffer("edges", edges.to(w.device, torch.uint8))
        self.register_buffer("memory", torch.zeros(p, dim, device=w.device))
        self.register_buffer("seen", torch.zeros(p, dtype=torch.uint8, device=w.device))

    def forward(self, ctx: BatchContext) -> torch.Tensor | None:
        """The loss on one single-domain batch (see the class docstring)."""
        if self.projector is None or not self.nodes:
            raise RuntimeError("'graph_match' was used before setup() and bind()")
        s = ctx.student_features.reshape(ctx.student_features.shape[0], -1)
        labels = ctx.labels.to(s.device).long()
        labels = torch.where(ctx.labelled.to(s.device, torch.bool), labels, -1)
        if not bool((labels >= 0).any()):
            return None
        projected = self.projector(s)
        classes, protos = class_prototypes(projected, labels)
        if self.center_domains:
            protos = protos - projected[labels >= 0].mean(dim=0)
        idx = [self.nodes.get((ctx.domain, int(c)), -1) for c in classes.tolist()]
        keep = [i for i, n in enumerate(idx) if n >= 0]
        if not keep:
            return None
        batch_nodes = torch.tensor([idx[i] for i in keep], device=s.device)
        protos = protos[keep]
        if self.config.memory:
            other = self.seen.bool()
            other[batch_nodes] = False
            mem_nodes = torch.nonzero(other).flatten()
        else:
            mem_nodes = batch_nodes[:0]
        all_nodes = torch.cat([batch_nodes, mem_nodes])
        q = torch.cat([protos, self.memory[mem_nodes].to(protos.dtype)])
        sigma = cosine_matrix(q)[: len(batch_nodes)]  # [B, |N|]
        w = self.teacher_weights[batch_nodes][:, all_nodes].to(sigma.dtype)
        mask = self.edges[batch_nodes][:, all_nodes].bool()
        if self.training:
            self._remember(batch_nodes, protos.detach())
        if not bool(mask.any()):
            return None
        if self.config.method == "mse":
            return (sigma - w)[mask].pow(2).mean()
        rows = mask.any(dim=1)  # rows without an edge have no distribution
        sigma, w, mask = sigma[rows], w[rows], mask[rows]
        tau = self.config.temperature
        log_ps = F.log_softmax((sigma / tau).masked_fill(~mask, -torch.inf), dim=1)
        log_pt = F.log_softmax((w / tau).masked_fill(~mask, -torch.inf), dim=1)
        terms = torch.where(mask, log_pt.exp() * (log_pt - log_ps), torch.zeros_like(sigma))
        return terms.sum(dim=1).mean()

    @torch.no_grad()
    def _remember(self, nodes: torch.Tensor, protos: torch.Tensor) -> None:
        mu = self.config.momentum
        old = self.memory[nodes]
        seen = self.seen[nodes].bool().unsqueeze(1)
        self.memory[nodes] = torch.where(seen, mu * old + (1 - mu) * protos.to(old.dtype), protos)
        self.seen[nodes] = 1


@hookimpl
def register_encoders(register: Register) -> None:
    """The knowledge graph's encoder."""
    register(KnowledgeGraphEncoder)


@hookimpl
def register_losses(register: Register) -> None:
    """The knowledge graph's loss."""
    register(GraphMatchLoss)
