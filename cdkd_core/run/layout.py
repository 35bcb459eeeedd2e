"""``layout.json`` (what each network reads and predicts, to rebuild it from its weights)
and ``preprocessing.safetensors`` (each view's fitted standardisation)."""

from __future__ import annotations

from pathlib import Path

from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.files import atomic_write_json, save_weights
from cdkd_core.nets.assembly import network_slot


def write_layout(run_dir: Path, domains: list[PreparedDomain]) -> None:
    """Write the run's ``layout.json`` and ``preprocessing.safetensors``."""
    sources = [d for d in domains if d.role == "source"]
    trained = [d for d in domains if d.trained]
    layout = {
        "teacher": [network_slot(d, "teacher").to_dict() for d in sources],
        "student": [network_slot(d, "student").to_dict() for d in trained],
        "domains": {
            d.name: {
                "role": d.role,
                "space": d.space,
                "task": d.task,
                "modality": d.modality,
                "classes": list(d.data.classes),
                "student_input_shape": list(d.test.student_x.shape[1:]),
                "student_input_dtype": str(d.test.student_x.dtype).removeprefix("torch."),
                "standardized": {
                    view: d.standardizers.get(view) is not None
                    for view in ("teacher_x", "student_x")
                },
            }
            for d in domains
        },
    }
    atomic_write_json(run_dir / "layout.json", layout)
    stats = {}
    for d in domains:
        for view, standardizer in d.standardizers.items():
            if standardizer is not None:
                stats[f"{d.name}/{view}/mean"] = standardizer.mean
                stats[f"{d.name}/{view}/std"] = standardizer.std
    save_weights(run_dir / "preprocessing.safetensors", stats)
