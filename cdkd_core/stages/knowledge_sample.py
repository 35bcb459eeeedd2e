"""A sample of the knowledge space: for a few train examples of each domain, the teacher's
knowledge vectors, the student's features and their projection into the knowledge space.

Each round's distillation stage saves one as it finishes (``knowledge_sample.safetensors``,
the last round's kept) with what the student was distilled towards and the projector it
trained (the ``hint`` loss's). Reading it back, or recomputing it for a run without the file, is the
report's: :mod:`cdkd_core.artifacts.knowledge_sample`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cdkd_core import seeds
from cdkd_core.files import atomic_write_bytes
from cdkd_core.nets.reading import eval_mode, read_layer

#: the file in the run directory
KNOWLEDGE_SAMPLE = "knowledge_sample.safetensors"
#: examples sampled per domain
PER_DOMAIN = 200


@dataclass
class DomainSample:
    """One domain's sampled train examples (rows aligned across the tensors)."""

    labels: torch.Tensor
    #: the student's features ``[n, F_s]`` (its ``feature_layer``)
    student_features: torch.Tensor
    #: the teacher's knowledge vectors ``[n, k]``; None where the teacher cannot read the
    #: domain's input space
    knowledge: torch.Tensor | None = None
    #: the student's features through the trained projector ``[n, k]``; None without one
    projected: torch.Tensor | None = None


@dataclass
class KnowledgeSample:
    """Sampled knowledge vectors and student features of every trained domain."""

    domains: dict[str, DomainSample]
    #: where it came from: ``round``, ``split``, ``projector`` (the loss whose projector made
    #: ``projected``, or None), ``source`` (``"run"``: saved by the pipeline; ``"recomputed"``)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """Flat ``"<domain>/<name>"`` tensors for safetensors."""
        out = {}
        for name, d in self.domains.items():
            out[f"{name}/labels"] = d.labels
            out[f"{name}/student_features"] = d.student_features
            if d.knowledge is not None:
                out[f"{name}/knowledge"] = d.knowledge
            if d.projected is not None:
                out[f"{name}/projected"] = d.projected
        return {k: v.detach().float().contiguous().cpu() for k, v in out.items()}

    @classmethod
    def from_tensors(
        cls, tensors: Mapping[str, torch.Tensor], meta: dict[str, Any]
    ) -> KnowledgeSample:
        """Inverse of :meth:`to_tensors` (domains in ``meta["domains"]`` order)."""
        domains = {}
        for name in meta.get("domains", []):
            domains[name] = DomainSample(
                labels=tensors[f"{name}/labels"].long(),
                student_features=tensors[f"{name}/student_features"],
                knowledge=tensors.get(f"{name}/knowledge"),
                projected=tensors.get(f"{name}/projected"),
            )
        return cls(domains, meta)


def sample_rows(n: int, per_domain: int, seed: int) -> torch.Tensor:
    """A sorted random subset of ``range(n)`` of at most ``per_domain`` rows."""
    if n <= per_domain:
        return torch.arange(n)
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=generator)[:per_domain].sort().values


def layer_features(
    model: nn.Module, layer: str, x: torch.Tensor, space: str, task: str | None, device: Any
) -> torch.Tensor:
    """The flattened output of ``layer`` on ``x`` (eval mode; the mode is restored)."""
    features, _ = read_layer(model, layer, x, space, task, device=device)
    return features.detach()


def find_projector(losses: Sequence[Any]) -> tuple[str | None, nn.Module | None]:
    """The first loss term holding a ``projector`` module (``hint``'s: student features to
    the knowledge space), as ``(loss name, projector)``; ``(None, None)`` if none does.
    Accepts the pipeline's ``(loss, weight)`` pairs or the losses themselves."""
    for item in losses:
        loss = item[0] if isinstance(item, tuple) else item
        projector = getattr(loss, "projector", None)
        if isinstance(projector, nn.Module):
            return getattr(loss, "name", type(loss).__name__), projector
    return None, None


@torch.no_grad()
def _project(projector: nn.Module, features: torch.Tensor) -> torch.Tensor:
    with eval_mode(projector):
        device = next(projector.parameters(), torch.empty(0)).device
        return projector(features.to(device)).detach().float().cpu()


def sample_knowledge(
    domains: Sequence[Any],
    knowledge: Callable[[Any, torch.Tensor], torch.Tensor | None],
    student: nn.Module,
    student_layer: str,
    device: Any,
    *,
    projector: nn.Module | None = None,
    per_domain: int = PER_DOMAIN,
    seed: int = 0,
) -> dict[str, DomainSample]:
    """Sample up to ``per_domain`` train examples of every trained domain (``domains``:
    the run's prepared domains, the ``i``-th sampled with :func:`~cdkd_core.seeds.sample_seed`).
    ``knowledge(domain, rows)`` gives the knowledge vectors of those train rows, or None
    where the teacher cannot read the domain."""
    out = {}
    for i, d in enumerate(domains):
        if not d.trained:
            continue
        rows = sample_rows(len(d.train), per_domain, seeds.sample_seed(seed, i))
        task = d.task if student.has_head(d.task) else None
        features = layer_features(
            student, student_layer, d.train.student_x[rows], d.space, task, device
        )
        vectors = knowledge(d, rows)
        out[d.name] = DomainSample(
            labels=d.train.y[rows].long().cpu(),
            student_features=features,
            knowledge=None if vectors is None else vectors.detach().float().cpu(),
            projected=None if projector is None else _project(projector, features),
        )
    return out


def save_knowledge_sample(
    run_dir: Path,
    domains: Sequence[Any],
    outputs: Mapping[str, Any],
    student: nn.Module,
    losses: Sequence[Any],
    student_layer: str,
    device: Any,
    *,
    round_: int,
    seed: int = 0,
    per_domain: int = PER_DOMAIN,
) -> None:
    """Write ``run_dir/knowledge_sample.safetensors`` (atomically) at the end of a round:
    ``outputs`` are the round's teacher outputs (``TeacherOutputs`` with ``knowledge``, as
    ``extract_knowledge`` returns them), ``losses`` the round's ``(loss, weight)`` pairs
    (a ``hint`` loss's projector gives the student's projected features)."""
    name, projector = find_projector(losses)

    def knowledge(d: Any, rows: torch.Tensor) -> torch.Tensor | None:
        vectors = getattr(outputs.get(d.name), "knowledge", None)
        return None if vectors is None else vectors[rows]

    sample = KnowledgeSample(
        sample_knowledge(
            domains,
            knowledge,
            student,
            student_layer,
            device,
            projector=projector,
            per_domain=per_domain,
            seed=seed,
        ),
        {"round": round_, "split": "train", "projector": name, "source": "run"},
    )
    write_knowledge_sample(run_dir, sample)


def write_knowledge_sample(run_dir: Path, sample: KnowledgeSample) -> None:
    """Write a sample to ``run_dir/knowledge_sample.safetensors`` atomically."""
    from safetensors.torch import save

    meta = {**sample.meta, "domains": list(sample.domains)}
    data = save(sample.to_tensors(), metadata={"cdkd": json.dumps(meta)})
    atomic_write_bytes(Path(run_dir) / KNOWLEDGE_SAMPLE, data)
