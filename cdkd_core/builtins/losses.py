"""The built-in losses: supervised cross-entropy and four distillation terms.

Every loss reads one single-domain
:class:`~cdkd_core.components.loss.BatchContext` and returns a scalar,
or ``None`` when the batch lacks what it needs (no labelled example, no teacher head for the
task, no knowledge vectors, too few examples to form relations). Teacher-side tensors are
detached again here, defensively, so no gradient ever reaches the teacher or the encoder.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from cdkd_core.components.base import ComponentConfig
from cdkd_core.components.loss import BatchContext, Loss
from cdkd_core.host.hookspecs import Register, hookimpl

#: Floor for distances and norms, so identical points give finite values and gradients.
_EPS = 1e-12


def _teacher(tensor: torch.Tensor, like: torch.Tensor, what: str) -> torch.Tensor:
    """``tensor`` detached, on ``like``'s device and dtype, with ``like``'s batch size."""
    if tensor.shape[0] != like.shape[0]:
        raise ValueError(
            f"{what} has batch size {tensor.shape[0]}, the student {like.shape[0]}; "
            "they must describe the same examples"
        )
    return tensor.detach().to(device=like.device, dtype=like.dtype)


def _flat(x: torch.Tensor) -> torch.Tensor:
    """``x`` as ``[B, D]`` (trailing dimensions flattened)."""
    return x.reshape(x.shape[0], -1)


def knowledge_projector(student_features: int, knowledge_dim: int, hidden: int | None) -> nn.Module:
    """The projector of student features onto the knowledge space: ``Linear(F_s, k)``, or
    ``Linear(F_s, hidden) → GELU → Linear(hidden, k)`` with ``hidden``."""
    if hidden is None:
        return nn.Linear(student_features, knowledge_dim)
    return nn.Sequential(
        nn.Linear(student_features, hidden), nn.GELU(), nn.Linear(hidden, knowledge_dim)
    )


def _pairwise_sq_dists(x: torch.Tensor) -> torch.Tensor:
    """``[B, B]`` squared Euclidean distances, computed from explicit differences (exact,
    with a zero diagonal and a smooth gradient everywhere)."""
    diff = x.unsqueeze(1) - x.unsqueeze(0)
    return diff.pow(2).sum(dim=-1)


def _off_diagonal(b: int, device: torch.device) -> torch.Tensor:
    """``[b, b]`` boolean mask, true off the diagonal."""
    return ~torch.eye(b, dtype=torch.bool, device=device)


class CrossEntropyLoss(Loss):
    """Cross-entropy of the student's logits on the labelled examples of the batch.

    ``L = -(1/|L|) Σ_{i∈L} Σ_c y_ic log softmax(z_i)_c``, where ``L`` is the set of
    labelled examples, ``z_i`` the student's logits and ``y_i`` the one-hot label, smoothed
    as ``(1-ε)·onehot + ε/C`` with ``ε = label_smoothing`` (Szegedy et al., "Rethinking the
    Inception Architecture for Computer Vision", CVPR 2016). Unlabelled examples
    (``labelled`` false or label -1) are ignored; ``None`` when no example is labelled.
    """

    name = "ce"
    requires = frozenset({"labels"})

    class Config(ComponentConfig):
        label_smoothing: float = Field(
            default=0.0,
            ge=0.0,
            lt=1.0,
            allow_inf_nan=False,
            description="Label smoothing ε in [0, 1): targets become (1-ε)·onehot + ε/C.",
        )

    def forward(self, ctx: BatchContext) -> torch.Tensor | None:
        logits = ctx.student_logits
        labels = ctx.labels.to(device=logits.device).long()
        mask = ctx.labelled.to(device=logits.device, dtype=torch.bool) & (labels >= 0)
        if not bool(mask.any()):
            return None
        # ignore_index rather than boolean indexing: the same mean over labelled examples,
        # without a gather of the batch
        return F.cross_entropy(
            logits,
            torch.where(mask, labels, -100),
            ignore_index=-100,
            label_smoothing=self.config.label_smoothing,
        )


class KDLoss(Loss):
    """Hinton's soft-target distillation: temperature-scaled KL from teacher to student.

    Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", NIPS 2014
    Deep Learning Workshop (arXiv:1503.02531, 2015)::

        L = T² · (1/B) Σ_i KL(p_t,i ‖ p_s,i) = T² · (1/B) Σ_i Σ_c p_t,ic log(p_t,ic / p_s,ic)
        p_t = softmax(t / T),  p_s = softmax(s / T)

    over every example of the batch, labelled or not (the teacher needs no label). The
    ``T²`` factor keeps the gradient, ``∂L/∂s_i = T·(p_s,i - p_t,i)/B``, on the scale of a
    hard-label loss as ``T`` changes. Teacher logits are detached. ``None`` when the teacher
    has no head for the batch's task.
    """

    name = "kd"
    requires = frozenset({"teacher_logits"})

    class Config(ComponentConfig):
        temperature: float = Field(
            default=4.0,
            gt=0.0,
            allow_inf_nan=False,
            description="Softmax temperature T > 0 applied to both teacher and student logits.",
        )

    def forward(self, ctx: BatchContext) -> torch.Tensor | None:
        if ctx.teacher_logits is None:
            return None
        s = ctx.student_logits
        t = _teacher(ctx.teacher_logits, s, "teacher_logits")
        if t.shape != s.shape:
            raise ValueError(
                f"teacher logits {tuple(t.shape)} and student logits {tuple(s.shape)} differ"
            )
        if s.shape[0] == 0:
            return None
        temp = self.config.temperature
        log_ps = F.log_softmax(s / temp, dim=-1)
        log_pt = F.log_softmax(t / temp, dim=-1)
        kl = F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True)
        return kl * temp**2


class HintLoss(Loss):
    """FitNets-style hint: regress projected student features onto the knowledge vectors.

    Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015. A regressor ``r``
    (``Linear(F_s, k)``, or ``Linear(F_s, hidden) → GELU → Linear(hidden, k)`` when
    ``hidden`` is set) is created in :meth:`setup` and trains with the student::

        L = (1/(B·k)) Σ_i ‖r(s_i) - φ_i‖²

    with ``s_i`` the student features and ``φ_i`` the knowledge vectors (the "hint").
    With ``normalize`` both ``r(s_i)`` and ``φ_i`` are L2-normalised first. The paper writes
    ``½‖·‖²`` summed, with a convolutional regressor on feature maps; here the hint is a
    vector, so the regressor is linear and the squared error is averaged over batch and
    dimensions (the usual implementation). ``None`` when the batch has no knowledge vectors.
    """

    name = "hint"
    requires = frozenset({"vectors"})

    class Config(ComponentConfig):
        hidden: int | None = Field(
            default=None,
            ge=1,
            description="Hidden width of a 2-layer MLP projector (GELU); None for a linear one.",
        )
        normalize: bool = Field(
            default=False,
            description="L2-normalise projected features and knowledge vectors before the MSE.",
        )

    def __init__(self, config: ComponentConfig | None = None) -> None:
        super().__init__(config)
        self.projector: nn.Module | None = None

    def setup(self, student_features: int, knowledge_dim: int | None) -> None:
        if knowledge_dim is None:
            raise ValueError(
                "the 'hint' loss regresses onto knowledge vectors, but the encoder gives no "
                "dimension (knowledge_dim is None); pair it with an encoder providing 'vectors'"
            )
        self.projector = knowledge_projector(student_features, knowledge_dim, self.config.hidden)

    def forward(self, ctx: BatchContext) -> torch.Tensor | None:
        if ctx.knowledge is None:
            return None
        if self.projector is None:
            raise RuntimeError("the 'hint' loss was used before setup() created its projector")
        s = _flat(ctx.student_features)
        if s.shape[0] == 0:
            return None
        target = _flat(_teacher(ctx.knowledge, s, "knowledge"))
        pred = self.projector(s)
        if self.config.normalize:
            pred = F.normalize(pred, dim=-1, eps=_EPS)
            target = F.normalize(target, dim=-1, eps=_EPS)
        return F.mse_loss(pred, target)


def _rkd_distance(x: torch.Tensor) -> torch.Tensor:
    """``ψ_D``: ``[B, B]`` pairwise distances divided by their mean over pairs ``i≠j``."""
    b = x.shape[0]
    d = _pairwise_sq_dists(x).clamp(min=_EPS).sqrt()
    off = _off_diagonal(b, x.device)
    d = d * off
    mu = d[off].mean().clamp(min=_EPS)
    return d / mu


def _rkd_angle(x: torch.Tensor) -> torch.Tensor:
    """``ψ_A``: ``[B, B, B]`` with ``[j, i, k] = ⟨e_ij, e_kj⟩``, ``e_ij = (x_i-x_j)/‖x_i-x_j‖``
    (vertex ``j``; the norm floored at ``sqrt(eps)`` so identical points give 0, not NaN)."""
    diff = x.unsqueeze(0) - x.unsqueeze(1)  # [j, i] = x_i - x_j
    norm = diff.pow(2).sum(dim=-1, keepdim=True).clamp(min=_EPS).sqrt()
    e = diff / norm
    return torch.bmm(e, e.transpose(1, 2))


def _distinct_triplets(b: int, device: torch.device) -> torch.Tensor:
    """``[b, b, b]`` mask, true where the three indices differ."""
    idx = torch.arange(b, device=device)
    j, i, k = idx.view(-1, 1, 1), idx.view(1, -1, 1), idx.view(1, 1, -1)
    return (i != j) & (k != j) & (i != k)


def _sp_gram(x: torch.Tensor) -> torch.Tensor:
    """Similarity-preserving Gram: ``normalize_rows(F Fᵀ)`` (row L2 norm)."""
    return F.normalize(x @ x.t(), p=2, dim=1, eps=_EPS)


class RelationalLoss(Loss):
    """Relational KD: match distance and angle relations (RKD) or batch similarities (SP).

    ``rkd`` — Park, Kim, Lu & Cho, "Relational Knowledge Distillation", CVPR 2019. With
    ``t`` the knowledge vectors and ``s`` the student features (no projection: relations
    are dimension-free)::

        ψ_D(x_i, x_j) = ‖x_i - x_j‖ / μ,   μ = mean_{i≠j} ‖x_i - x_j‖
        ψ_A(x_i, x_j, x_k) = ⟨e_ij, e_kj⟩,  e_ij = (x_i - x_j) / ‖x_i - x_j‖
        L = w_d · mean_{i≠j} h(ψ_D^S - ψ_D^T) + w_a · mean_{i,j,k distinct} h(ψ_A^S - ψ_A^T)

    with ``h`` the Huber loss (``smooth_l1``, β = 1) and ``w_d = λ_D = 1``, ``w_a = λ_A = 2``
    by default, as in the paper. Means run over the tuples of distinct examples the paper
    sums over (the reference code also averages the diagonal's zeros). Norms are floored at
    ``sqrt(1e-12)``, so identical points give zero relations and finite gradients. Needs
    ≥ 2 examples; with exactly 2 there is no triplet, so the angle term is left out
    (``None`` if the distance weight is 0 too).

    ``sp`` — Tung & Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019::

        G = normalize_rows(F Fᵀ) for each side,   L = ‖G_T - G_S‖_F² / b²

    with ``b`` the batch size; the two weights apply to ``rkd`` only. Needs ≥ 2 examples.
    ``None`` when the batch has no knowledge vectors or is too small.
    """

    name = "relational"
    requires = frozenset({"vectors"})

    class Config(ComponentConfig):
        distance_weight: float = Field(
            default=1.0,
            ge=0.0,
            allow_inf_nan=False,
            description="Weight w_d of the RKD distance term (paper's λ_D); rkd only.",
        )
        angle_weight: float = Field(
            default=2.0,
            ge=0.0,
            allow_inf_nan=False,
            description="Weight w_a of the RKD angle term (paper's λ_A); rkd only.",
        )
        method: Literal["rkd", "sp"] = Field(
            default="rkd",
            description="'rkd': distance + angle relations (Park et al. 2019); "
            "'sp': similarity-preserving Gram matching (Tung & Mori 2019).",
        )

    def forward(self, ctx: BatchContext) -> torch.Tensor | None:
        if ctx.knowledge is None:
            return None
        s = _flat(ctx.student_features)
        t = _flat(_teacher(ctx.knowledge, s, "knowledge"))
        b = s.shape[0]
        if b < 2:
            return None
        if self.config.method == "sp":
            diff = _sp_gram(t) - _sp_gram(s)
            return diff.pow(2).sum() / b**2
        return self._rkd(s, t)

    def _rkd(self, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor | None:
        b = s.shape[0]
        w_d, w_a = self.config.distance_weight, self.config.angle_weight
        off = _off_diagonal(b, s.device)
        loss = F.smooth_l1_loss(_rkd_distance(s)[off], _rkd_distance(t)[off]) * w_d
        if b < 3:
            return loss if w_d > 0 else None
        if w_a > 0:
            tri = _distinct_triplets(b, s.device)
            angle = F.smooth_l1_loss(_rkd_angle(s)[tri], _rkd_angle(t)[tri])
            loss = loss + w_a * angle
        return loss


def _transition_log_probs(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """``[B, B-1]`` log ``P[i, j]`` over ``j ≠ i`` (the diagonal removed, order of ``j`` kept):
    ``softmax_j(-d²_ij / (mean_{i≠j} d² · τ))``."""
    b = x.shape[0]
    off = _off_diagonal(b, x.device)
    d2 = _pairwise_sq_dists(x)[off].view(b, b - 1)
    d2 = d2 / d2.mean().clamp(min=_EPS)
    return F.log_softmax(-d2 / temperature, dim=-1)


class GraphLoss(Loss):
    """Match the teacher's k-NN similarity graph: KL between per-row random-walk transitions.

    The ``graph`` encoder's knowledge vectors ``φ`` are a spectral embedding of a k-NN graph
    over teacher features (Laplacian eigenmaps, Belkin & Niyogi, Neural Computation 2003),
    so Euclidean neighbourhoods in ``φ`` reflect the graph. Within the batch, each side
    gets a stochastic-neighbour transition matrix (as in SNE, Hinton & Roweis, NIPS 2002)::

        dn²_ij = ‖x_i - x_j‖² / mean_{a≠b} ‖x_a - x_b‖²        (scale-free)
        P[i, j] = exp(-dn²_ij / τ) / Σ_{l≠i} exp(-dn²_il / τ)     for j ≠ i, P[i, i] = 0
        L = (1/B) Σ_i KL(P_T[i] ‖ P_S[i]) = (1/B) Σ_i Σ_{j≠i} P_T[i,j] log(P_T[i,j] / P_S[i,j])

    with ``P_T`` from the knowledge vectors and ``P_S`` from the student features (no
    projection; the matrices are dimension-free, and the normalisation makes the loss
    invariant to rescaling either side). ``None`` with no knowledge vectors or fewer than
    3 examples (with 2, each row has a single neighbour and the KL is always 0).
    """

    name = "graph"
    requires = frozenset({"graph"})

    class Config(ComponentConfig):
        temperature: float = Field(
            default=1.0,
            gt=0.0,
            allow_inf_nan=False,
            description="Temperature τ > 0 of the transition softmax over normalised "
            "squared distances (smaller: sharper, more local neighbourhoods).",
        )

    def forward(self, ctx: BatchContext) -> torch.Tensor | None:
        if ctx.knowledge is None:
            return None
        s = _flat(ctx.student_features)
        t = _flat(_teacher(ctx.knowledge, s, "knowledge"))
        if s.shape[0] < 3:
            return None
        temp = self.config.temperature
        log_pt = _transition_log_probs(t, temp)
        log_ps = _transition_log_probs(s, temp)
        return F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True)


@hookimpl
def register_losses(register: Register) -> None:
    """The core's own losses (the ``knowledge_graph`` feature registers ``graph_match``)."""
    for cls in (CrossEntropyLoss, KDLoss, HintLoss, RelationalLoss, GraphLoss):
        register(cls)
