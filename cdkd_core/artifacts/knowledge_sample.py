"""Reading a run's knowledge sample back for the report (``knowledge_sample.safetensors``,
written by the distillation stage: :mod:`cdkd_core.stages.knowledge_sample`), or
recomputing it for a run without that file: the teacher, student and encoder are rebuilt,
the domains loaded again, and the knowledge vectors encoded from the run's final teacher.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cdkd_core import seeds
from cdkd_core.stages.knowledge_sample import (
    KNOWLEDGE_SAMPLE,
    PER_DOMAIN,
    DomainSample,
    KnowledgeSample,
    find_projector,
    layer_features,
    sample_knowledge,
    sample_rows,
    save_knowledge_sample,
    write_knowledge_sample,
)

if TYPE_CHECKING:
    from cdkd_core.host.plugin_host import PluginHost

__all__ = [
    "KNOWLEDGE_SAMPLE",
    "PER_DOMAIN",
    "DomainSample",
    "KnowledgeSample",
    "find_projector",
    "read_knowledge_sample",
    "recompute_knowledge_sample",
    "sample_knowledge",
    "sample_rows",
    "save_knowledge_sample",
    "write_knowledge_sample",
]


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
    run_dir: Path, host: PluginHost, per_domain: int = PER_DOMAIN
) -> KnowledgeSample:
    """Rebuild a finished run's teacher, student and encoder from its directory, load its
    domains again (the same splits: same config and seed) and sample as the pipeline does.
    The knowledge vectors come from the final teacher and the last round's encoder; the
    loss projectors are not saved with a run, so ``projected`` is None."""
    from cdkd_core.config.loading import load_config
    from cdkd_core.data.preparation import prepare_domains
    from cdkd_core.files import read_run_file
    from cdkd_core.nets.assembly import build_network

    run_dir = Path(run_dir)
    config = load_config(run_dir / "config.yaml", host=host, machine=False)  # a finished run's
    feedback = host.get("feedback", config.feedback.name).from_params(config.feedback.params)
    domains = prepare_domains(config, host, feedback.quiz_fraction)
    sources = [d for d in domains if d.role == "source"]
    trained = [d for d in domains if d.trained]
    device = torch.device("cpu")
    with torch.random.fork_rng(devices=[]):  # building seeds torch: keep the caller's state
        teacher = build_network(config.teacher, sources, host, "teacher", seed=config.seed)
        student = build_network(
            config.student, trained, host, "student", seed=seeds.student_seed(config.seed)
        )
    teacher.load_state_dict(read_run_file(run_dir / "teacher.safetensors"))
    student.load_state_dict(read_run_file(run_dir / "student.safetensors"))
    meta = read_run_file(run_dir / "encoder.json")
    # the config's name: it says which plugin's where two register the encoder's name
    encoder = host.get("encoders", config.encoder.name).from_params(meta["params"])
    encoder.load(run_dir)

    @torch.no_grad()
    def knowledge(d: Any, rows: torch.Tensor) -> torch.Tensor | None:
        if not teacher.has_stem(d.space):
            return None
        task = d.task if teacher.has_head(d.task) else None
        x = d.train.teacher_x[rows]
        features = layer_features(teacher, config.teacher.feature_layer, x, d.space, task, device)
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
