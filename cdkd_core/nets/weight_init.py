"""Knowledge from weights: initialising the student's input layers from the principal
components of the teacher's corresponding layers (``student.weight_init: teacher_pca``).

Pairing. Only layers that read a domain's *inputs* are paired, because only there do the
teacher's and the student's weights live in one coordinate system: the first layer with
parameters of a stem (a stem per input space) in the student is paired with the first
layer with parameters of the teacher's stem for the same space, when

- the teacher has a stem for that space and both read the same view of the inputs
  (``same_view``: not e.g. cached sentence embeddings for the teacher, token ids for the
  student);
- both layers are of one kind: ``linear`` (``nn.Linear``: same ``in_features``), ``conv``
  (``nn.Conv1d/2d/3d``: same in-channels, ``groups == 1``, same dilation; the student's
  kernel no larger than the teacher's in every dimension and of the same parity, the
  teacher's kernels then cropped to their centre), or ``embedding`` (``nn.Embedding`` /
  ``nn.EmbeddingBag``: same vocabulary size and padding index).

The trunk and the heads are never paired: they read the stems' outputs, whose coordinates
each network learns on its own, so a teacher's trunk row has no meaning for the student.

Method, filters (``linear`` and ``conv``; a kernel ``[out, in, *k]`` is flattened to
``[out, in * prod(k)]``): the rows of ``W_T`` (``m`` filters in input space ``R^n``) are
centred, ``C = W_T - 1 mu^T``, and decomposed ``C = U S V^T``. The student's ``j``-th row
is ``s * v_j`` for ``j < k = min(out_S, rank)``: the top principal directions of the
teacher's filters, each scaled to ``s``, the root-mean-square row norm of the student's own
default (random) initialisation of that layer, so that only the directions come from the
teacher and the optimiser sees weights of the usual size. Rows beyond ``k`` keep their
random initialisation; the bias is zeroed (inputs are standardised, so a zero bias centres
every projection).

Method, embeddings (rows are tokens, ``W_T`` is ``vocab x d_T``): ``C = W_T - 1 mu^T``,
``C = U S V^T``, and the student's first ``k = min(d_S, rank)`` columns are the principal
component scores ``C V_k = U_k S_k`` (each token's embedding projected onto the top ``k``
directions of the embedding space), the whole matrix scaled by one factor so its RMS row
norm equals that of the student's default initialisation; the padding row stays zero.

Sign convention: each ``v_j`` is flipped so that its entry of largest magnitude (the first
such) is positive, so the result is deterministic.

The explained-variance fraction of the kept components is ``sum_{j<k} s_j^2 / sum_j s_j^2``;
:func:`captured_variance` gives the same figure for any student weights (the share of the
teacher's centred weights lying in the student's span), so a random initialisation can be
compared with it (by Eckart-Young the PCA initialisation is the largest possible).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
from torch import nn

from cdkd_core.errors import ConfigError

LayerKind = Literal["linear", "conv", "embedding"]
KEY = "student.weight_init_layers"
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_EMBEDDING = (nn.Embedding, nn.EmbeddingBag)


@dataclass(frozen=True)
class LayerPair:
    """A student layer and the teacher layer it is initialised from (module paths)."""

    student: str
    teacher: str
    kind: LayerKind


@dataclass
class LayerInit:
    """What :func:`init_from_teacher` did to one layer."""

    student: str
    teacher: str
    kind: LayerKind
    teacher_shape: list[int]
    student_shape: list[int]
    components: int
    explained_variance: float
    captured: float
    random_captured: float


@dataclass
class InitReport:
    """The initialised layers, and why each other student stem was not paired."""

    layers: list[LayerInit] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready form (for ``metrics.jsonl``)."""
        return {"layers": [asdict(x) for x in self.layers], "skipped": dict(self.skipped)}


def same_view_spaces(domains: Iterable) -> set[str]:
    """Stem keys of the input spaces whose domains (prepared domains) show the teacher and
    the student the same inputs (compared on the first rows of each val split)."""
    from cdkd_core.nets.network import module_key

    views: dict[str, bool] = {}
    for d in domains:
        t, s = d.val.teacher_x, d.val.student_x
        same = t is s or (t.shape == s.shape and t.dtype == s.dtype and torch.equal(t[:64], s[:64]))
        key = module_key(d.space)
        views[key] = views.get(key, True) and bool(same)
    return {k for k, same in views.items() if same}


def layer_kind(module: nn.Module) -> LayerKind | None:
    """The pairable kind of a module, or None."""
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, _CONV):
        return "conv"
    if isinstance(module, _EMBEDDING):
        return "embedding"
    return None


def _first_layer(module: nn.Module, prefix: str) -> tuple[str, nn.Module] | None:
    """The first submodule (registration order) that holds parameters of its own."""
    for name, sub in module.named_modules():
        if any(True for _ in sub.parameters(recurse=False)):
            return (f"{prefix}.{name}" if name else prefix), sub
    return None


def _describe(module: nn.Module) -> str:
    text = repr(module).splitlines()[0]
    return text if len(text) <= 80 else text[:77] + "..."


def _mismatch(student: nn.Module, teacher: nn.Module) -> str | None:
    """Why two layers cannot be paired, or None when they can."""
    s_kind, t_kind = layer_kind(student), layer_kind(teacher)
    if s_kind is None:
        return f"the student layer {_describe(student)} is no Linear, Conv or Embedding"
    if t_kind is None:
        return f"the teacher's layer there is {_describe(teacher)}, not a {s_kind} layer"
    if s_kind != t_kind:
        return f"kinds differ: student {_describe(student)}, teacher {_describe(teacher)}"
    if s_kind == "linear" and student.in_features != teacher.in_features:
        return f"input widths differ: student {student.in_features}, teacher {teacher.in_features}"
    if s_kind == "conv":
        if student.weight.dim() != teacher.weight.dim():
            return f"kinds differ: student {_describe(student)}, teacher {_describe(teacher)}"
        if student.groups != 1 or teacher.groups != 1:
            return "grouped convolutions are not paired"
        if student.in_channels != teacher.in_channels:
            return (
                f"in-channels differ: student {student.in_channels}, teacher {teacher.in_channels}"
            )
        if tuple(student.dilation) != tuple(teacher.dilation):
            return f"dilations differ: student {student.dilation}, teacher {teacher.dilation}"
        for s, t in zip(student.kernel_size, teacher.kernel_size, strict=True):
            if s > t or (t - s) % 2:
                return (
                    f"kernel sizes: student {tuple(student.kernel_size)} is not a centre crop "
                    f"of teacher {tuple(teacher.kernel_size)}"
                )
    if s_kind == "embedding":
        if student.num_embeddings != teacher.num_embeddings:
            return (
                f"vocabularies differ: student {student.num_embeddings}, "
                f"teacher {teacher.num_embeddings}"
            )
        if student.padding_idx != teacher.padding_idx:
            return (
                f"padding indices differ: student {student.padding_idx}, "
                f"teacher {teacher.padding_idx}"
            )
    return None


def _stem_pair(
    student: nn.Module, teacher: nn.Module, key: str, same_view: Collection[str] | None
) -> tuple[LayerPair | None, str]:
    """The pair of the stem ``key``'s input layers, or None and why not."""
    if key not in teacher.stems:
        return None, "the teacher has no stem for this input space"
    if same_view is not None and key not in same_view:
        return None, "the teacher reads another view of these inputs than the student"
    s = _first_layer(student.stems[key], f"stems.{key}")
    t = _first_layer(teacher.stems[key], f"stems.{key}")
    if s is None or t is None:
        return None, "a stem without parameters"
    why = _mismatch(s[1], t[1])
    if why is not None:
        return None, why
    return LayerPair(s[0], t[0], layer_kind(s[1])), ""  # type: ignore[arg-type]


def _stem_key(student: nn.Module, path: str) -> str | None:
    """The student stem key a configured path names (``stems.<key>`` or a path inside it;
    the key may be written with ``.`` for ``~``)."""
    if not path.startswith("stems."):
        return None
    rest = path[len("stems.") :]
    for key in student.stems:
        for spelled in {key, key.replace("~", ".")}:
            if rest == spelled or rest.startswith(spelled + "."):
                return key
    return None


def pair_layers(
    student: nn.Module,
    teacher: nn.Module,
    layers: str | Sequence[str] = "auto",
    *,
    same_view: Collection[str] | None = None,
) -> tuple[list[LayerPair], dict[str, str]]:
    """The student layers to initialise and their teacher layers, and why each other
    student stem is not paired.

    ``layers``: ``"auto"`` (every pairable stem input layer) or student module paths
    (``stems.<space>`` or the path of its first layer). ``same_view``: stem keys whose
    teacher and student read the same inputs (None: all). Raises ConfigError naming
    ``student.weight_init_layers`` for a path that cannot be paired, or when nothing is.
    """
    pairs: list[LayerPair] = []
    skipped: dict[str, str] = {}
    if layers == "auto":
        for key in student.stems:
            pair, why = _stem_pair(student, teacher, key, same_view)
            if pair is None:
                skipped[f"stems.{key}"] = why
            else:
                pairs.append(pair)
        if not pairs:
            reasons = "; ".join(f"{k}: {v}" for k, v in skipped.items()) or "no stems"
            raise ConfigError(
                "student.weight_init: teacher_pca found no student layer with a corresponding "
                f"teacher layer ({reasons}); use weight_init: random"
            )
        return pairs, skipped
    valid = [
        p.student for k in student.stems if (p := _stem_pair(student, teacher, k, same_view)[0])
    ]
    hint = f"pairable here: {', '.join(valid) or 'none'}"
    for path in layers:
        key = _stem_key(student, path)
        if key is None:
            raise ConfigError(
                f"{KEY}: {path!r} cannot be paired: only the first layer of a stem (which reads "
                "a domain's inputs) has a teacher counterpart; the trunk and heads read "
                f"features each network learns on its own ({hint})"
            )
        pair, why = _stem_pair(student, teacher, key, same_view)
        if pair is None:
            raise ConfigError(f"{KEY}: {path!r} cannot be paired: {why} ({hint})")
        if path not in (f"stems.{key}", f"stems.{key.replace('~', '.')}", pair.student):
            raise ConfigError(
                f"{KEY}: {path!r} cannot be paired: only the stem's first layer "
                f"{pair.student!r} reads the inputs ({hint})"
            )
        if pair not in pairs:
            pairs.append(pair)
    return pairs, skipped


# -- the math ---------------------------------------------------------------------------------
def _flip(v: torch.Tensor) -> torch.Tensor:
    """Rows of ``v`` with signs flipped so each row's largest-magnitude entry is positive."""
    idx = v.abs().argmax(dim=1, keepdim=True)
    sign = torch.sign(v.gather(1, idx))
    return v * torch.where(sign == 0, torch.ones_like(sign), sign)


def principal_directions(weight: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top ``k`` principal directions ``[k', n]`` (unit rows, sign convention applied)
    of the rows of ``weight [m, n]`` and all squared singular values of the centred rows;
    ``k' = min(k, rank)``."""
    w = weight.detach().double()
    centred = w - w.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    rank = int((s > s.max() * max(centred.shape) * 1e-12).sum()) if s.numel() else 0
    return _flip(vh[: min(k, rank)]), s.square()


def explained_fraction(squared: torch.Tensor, k: int) -> float:
    """``sum(squared[:k]) / sum(squared)`` (0 for an all-zero spectrum)."""
    total = float(squared.sum())
    return float(squared[:k].sum()) / total if total > 0 else 0.0


def _span(vectors: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis (columns) of the span of the columns of ``vectors``."""
    u, s, _ = torch.linalg.svd(vectors.detach().double(), full_matrices=False)
    if not s.numel() or float(s.max()) == 0:
        return u[:, :0]
    return u[:, s > s.max() * max(vectors.shape) * 1e-12]


def captured_variance(
    teacher_weight: torch.Tensor, student_weight: torch.Tensor, kind: LayerKind = "linear"
) -> float:
    """Share of the teacher's centred weights ``C`` lying in the student's span.

    Filters (``linear``, ``conv``; flattened rows in input space): ``||C P||^2 / ||C||^2``,
    ``P`` the projection onto the span of the student's rows. Embeddings (rows are tokens,
    centred over tokens): ``||P C||^2 / ||C||^2``, ``P`` the projection onto the span of the
    student's columns. For a PCA initialisation of ``k`` rows (columns) this is the
    explained-variance fraction of the ``k`` components, the largest any ``k`` can reach.
    """
    c = teacher_weight.detach().double().reshape(teacher_weight.shape[0], -1)
    c = c - c.mean(dim=0, keepdim=True)
    total = float(c.square().sum())
    if total == 0:
        return 0.0
    s = student_weight.detach().double().reshape(student_weight.shape[0], -1)
    if kind == "embedding":
        captured = float((_span(s).T @ c).square().sum()) / total
    else:
        captured = float((c @ _span(s.T)).square().sum()) / total
    return min(captured, 1.0)  # rounding may give 1 + 1e-16


def _rms_row_norm(weight: torch.Tensor) -> float:
    return float(weight.detach().double().square().sum(dim=1).mean().sqrt())


def _crop(weight: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Centre crop of conv kernels ``[out, in, *k]`` to the spatial ``size``."""
    index = [slice(None), slice(None)]
    for have, want in zip(weight.shape[2:], size, strict=True):
        start = (have - want) // 2
        index.append(slice(start, start + want))
    return weight[tuple(index)]


def _host(weight: torch.Tensor) -> torch.Tensor:
    """A float64 copy on the CPU (the math runs there, whatever the networks' devices)."""
    return weight.detach().to(device="cpu", dtype=torch.float64)


@torch.no_grad()
def _init_filters(student: nn.Module, teacher: nn.Module) -> tuple[int, float, float, float]:
    t = _host(teacher.weight)
    if isinstance(student, _CONV):
        t = _crop(t, student.kernel_size)
    t = t.reshape(t.shape[0], -1)
    new = _host(student.weight).reshape(student.weight.shape[0], -1)
    random_captured = captured_variance(t, new)
    scale = _rms_row_norm(new)
    directions, squared = principal_directions(t, new.shape[0])
    k = directions.shape[0]
    new[:k] = scale * directions
    student.weight.copy_(new.reshape(student.weight.shape))
    if student.bias is not None:
        student.bias.zero_()
    return k, explained_fraction(squared, k), random_captured, captured_variance(t, new)


@torch.no_grad()
def _init_embedding(student: nn.Module, teacher: nn.Module) -> tuple[int, float, float, float]:
    rows = torch.ones(teacher.weight.shape[0], dtype=torch.bool)
    if student.padding_idx is not None:
        rows[student.padding_idx] = False
    t = _host(teacher.weight)[rows]  # tokens x d_T (padding excluded)
    weight = _host(student.weight)
    new = weight[rows]
    random_captured = captured_variance(t, new, "embedding")
    scale = _rms_row_norm(new)
    directions, squared = principal_directions(t, new.shape[1])
    k = directions.shape[0]
    scores = (t - t.mean(dim=0, keepdim=True)) @ directions.T  # tokens x k: U_k S_k
    norm = _rms_row_norm(scores)
    new[:, :k] = scores * (scale / norm if norm > 0 else 0.0)
    weight[rows] = new
    student.weight.copy_(weight)
    captured = captured_variance(t, new, "embedding")
    return k, explained_fraction(squared, k), random_captured, captured


def init_from_teacher(
    student: nn.Module,
    teacher: nn.Module,
    layers: str | Sequence[str] = "auto",
    *,
    same_view: Collection[str] | None = None,
) -> InitReport:
    """Initialise the student's paired input layers (see :func:`pair_layers`) from the
    principal components of the teacher's, in place; returns what was done."""
    pairs, skipped = pair_layers(student, teacher, layers, same_view=same_view)
    report = InitReport(skipped=skipped)
    for pair in pairs:
        s_mod, t_mod = student.get_submodule(pair.student), teacher.get_submodule(pair.teacher)
        if pair.kind == "embedding":
            k, explained, random_captured, captured = _init_embedding(s_mod, t_mod)
        else:
            k, explained, random_captured, captured = _init_filters(s_mod, t_mod)
        report.layers.append(
            LayerInit(
                student=pair.student,
                teacher=pair.teacher,
                kind=pair.kind,
                teacher_shape=list(t_mod.weight.shape),
                student_shape=list(s_mod.weight.shape),
                components=k,
                explained_variance=explained,
                captured=captured,
                random_captured=random_captured,
            )
        )
    return report
