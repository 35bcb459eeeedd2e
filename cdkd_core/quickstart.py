"""The built-in quickstart pipeline (``cdkd run`` without a config)."""

from __future__ import annotations

from typing import Any

CORE_QUICKSTART: dict[str, Any] = {
    "name": "quickstart",
    "seed": 0,
    "domains": [
        {"name": "sklearn.digits", "role": "source"},
        {"name": "sklearn.wine", "role": "source"},
        {"name": "sklearn.breast_cancer", "role": "source"},
    ],
    "teacher": {
        "trunk": {"name": "mlp", "params": {"width": 256, "depth": 3}},
        "stems": {"image": {"name": "cnn", "params": {"channels": 32}}},
    },
    "student": {
        "trunk": {"name": "mlp", "params": {"width": 32, "depth": 1}},
        "stems": {"image": {"name": "cnn", "params": {"channels": 8}}},
    },
    "encoder": {"name": "pca", "params": {"dim": 16}},
    "losses": [
        {"name": "ce", "weight": 1.0},
        {"name": "kd", "weight": 1.0, "params": {"temperature": 4.0}},
        {"name": "hint", "weight": 0.5},
    ],
    "feedback": {"name": "none"},
    # one thread: these models are too small to gain from two, and a second thread makes
    # the run many times slower whenever another process holds a core
    "train": {"epochs": 30, "batch_size": 64, "lr": 0.003, "device": "auto", "threads": 1},
}


def quickstart_config(host: Any = None) -> dict[str, Any]:
    """The quickstart config: real data bundled with the installed packages, capped in size
    so it finishes in minutes on two CPU cores."""
    import copy

    return copy.deepcopy(CORE_QUICKSTART)
