"""A sample of the knowledge space: for a few train examples of each domain, the teacher's
knowledge vectors, the student's features and their projection into the knowledge space.

The pipeline saves one at the end of each round (``knowledge_sample.safetensors``, the last
round's kept) with what the student was distilled towards and the projector it trained (the
``hint`` loss's). For a run without that file the sample is recomputed from the run
directory: the teacher, student and encoder are rebuilt, the domains loaded again, and the
knowledge vectors encoded from the run's final teacher.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

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


@torch.no_grad()
def _features(
    model: nn.Module, layer: str, x: torch.Tensor, space: str, task: str | None, device: Any
) -> torch.Tensor:
    """The flattened output of ``layer`` on ``x`` (eval mode; the mode is restored)."""
    from cdkd_core.nets.reading import FeatureHook

    was_training = model.training
    model.eval()
    try:
        with FeatureHook(model, layer) as hook:
            xb = x.to(device)
            if task is None:
                model.features(xb, space)
            else:
                model(xb, space, task)
            return hook.take().detach().float().cpu()
    finally:
        model.train(was_training)


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
    was_training = projector.training
    projector.eval()
    try:
        device = next(projector.parameters(), torch.empty(0)).device
        return projector(features.to(device)).detach().float().cpu()
    finally:
        projector.train(was_training)


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
    the run's prepared domains, the ``i``-th sampled with seed ``seed + i``).
    ``knowledge(domain, rows)`` gives the knowledge vectors of those train rows, or None
    where the teacher cannot read the domain."""
    out = {}
    for i, d in enumerate(domains):
        if not d.trained:
            continue
        rows = sample_rows(len(d.train), per_domain, seed + i)
        task = d.task if student.has_head(d.task) else None
        features = _features(student, student_layer, d.train.student_x[rows], d.space, task, device)
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

    from cdkd_core.run.rundir import atomic_write_bytes

    meta = {**sample.meta, "domains": list(sample.domains)}
    data = save(sample.to_tensors(), metadata={"cdkd": json.dumps(meta)})
    atomic_write_bytes(Path(run_dir) / KNOWLEDGE_SAMPLE, data)


def read_knowledge_sample(run_dir: Path) -> KnowledgeSample | None:
    """The run's saved sample, or None when it has none."""
    from safetensors import safe_open

    path = Path(run_dir) / KNOWLEDGE_SAMPLE
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads((handle.metadata() or {}).get("cdkd", "{}"))
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    return KnowledgeSample.from_tensors(tensors, meta)


def recompute_knowledge_sample(
    run_dir: Path, host: Any = None, per_domain: int = PER_DOMAIN
) -> KnowledgeSample:
    """Rebuild a finished run's teacher, student and encoder from its directory, load its
    domains again (the same splits: same config and seed) and sample as the pipeline does.
    The knowledge vectors come from the final teacher and the last round's encoder; the
    loss projectors are not saved with a run, so ``projected`` is None."""
    from cdkd_core.config.models import load_config
    from cdkd_core.data.preparation import prepare_domains
    from cdkd_core.host.plugin_host import PluginHost
    from cdkd_core.nets.assembly import build_network
    from cdkd_core.run.rundir import load_weights

    run_dir = Path(run_dir)
    host = host if host is not None else PluginHost()
    config = load_config(run_dir / "config.yaml", host=host, machine=False)  # a finished run's
    feedback = host.get("feedback", config.feedback.name).from_params(config.feedback.params)
    domains = prepare_domains(config, host, feedback.quiz_fraction)
    sources = [d for d in domains if d.role == "source"]
    trained = [d for d in domains if d.trained]
    device = torch.device("cpu")
    with torch.random.fork_rng(devices=[]):  # building seeds torch: keep the caller's state
        teacher = build_network(config.teacher, sources, host, "teacher", seed=config.seed)
        student = build_network(config.student, trained, host, "student", seed=config.seed + 1)
    teacher.load_state_dict(load_weights(run_dir / "teacher.safetensors"))
    student.load_state_dict(load_weights(run_dir / "student.safetensors"))
    meta = json.loads((run_dir / "encoder.json").read_text(encoding="utf-8"))
    # the config's name: it says which plugin's where two register the encoder's name
    encoder = host.get("encoders", config.encoder.name).from_params(meta["params"])
    encoder.load(run_dir)

    @torch.no_grad()
    def knowledge(d: Any, rows: torch.Tensor) -> torch.Tensor | None:
        if not teacher.has_stem(d.space):
            return None
        task = d.task if teacher.has_head(d.task) else None
        x = d.train.teacher_x[rows]
        features = _features(teacher, config.teacher.feature_layer, x, d.space, task, device)
        return encoder.transform(features, d.name)

    samples = sample_knowledge(
        domains,
        knowledge,
        student,
        config.student.feature_layer,
        device,
        per_domain=per_domain,
        seed=config.seed,
    )
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    return KnowledgeSample(
        samples,
        {
            "round": summary.get("rounds", 1) - 1,
            "split": "train",
            "projector": None,
            "source": "recomputed",
        },
    )
