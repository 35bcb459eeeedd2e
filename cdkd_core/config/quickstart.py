"""The built-in quickstart pipeline (``cdkd run`` without a config).

With no domain plugin installed it runs on real data bundled with scikit-learn. Each
plugin listed in ``registry.yaml`` may give a ``quickstart`` fragment (its domains, capped
in size, the stems they need, and the student's ``weight_init`` its stems want); when
such plugins are installed and loaded, the quickstart is their cross-domain example
instead.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cdkd_core.host.plugin_host import PluginHost

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
    # the run many times slower whenever another process holds a core; one thread and
    # deterministic algorithms also make the printed table the same on machines of a kind
    "train": {
        "epochs": 30,
        "batch_size": 64,
        "lr": 0.003,
        "device": "auto",
        "threads": 1,
        "deterministic": True,
    },
}


def plugin_fragments(host: PluginHost) -> list[dict[str, Any]]:
    """The ``quickstart`` fragments of catalogued plugins that are loaded without error and
    register every domain their fragment names."""
    from cdkd_core.host.catalog import catalog

    domains = host.components("domains")
    fragments = []
    for entry in catalog():
        fragment = entry.get("quickstart")
        plugin = host.plugins.get(entry["name"])
        if not fragment or plugin is None or not plugin.ok:
            continue
        if all(d["name"] in domains for d in fragment.get("domains", [])):
            fragments.append(fragment)
    return fragments


def quickstart_config(host: PluginHost) -> dict[str, Any]:
    """The quickstart config: the cross-domain example of the plugins ``host`` loaded,
    else the core's scikit-learn domains; capped in size so it finishes in minutes on two
    CPU cores."""
    config = copy.deepcopy(CORE_QUICKSTART)
    fragments = plugin_fragments(host)
    if not fragments:
        return config
    config["domains"] = [copy.deepcopy(d) for f in fragments for d in f["domains"]]
    for slot in ("teacher", "student"):
        stems = config[slot]["stems"]
        for fragment in fragments:
            stems.update(copy.deepcopy(fragment.get(f"{slot}_stems", {})))
    for fragment in fragments:  # e.g. teacher_tokens for a plugin's token stem
        if "student_weight_init" in fragment:
            config["student"]["weight_init"] = fragment["student_weight_init"]
    config["train"]["epochs"] = min(f.get("epochs", 30) for f in fragments)
    return config
