"""A finished run's teacher rebuilt from its run directory alone (``config.yaml``,
``layout.json``, ``teacher.safetensors``; no data is loaded): a network, an ensemble or a
classical teacher, as the run's config describes it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from cdkd_core.files import read_run_file
from cdkd_core.nets.assembly import NetworkSlot, build_teacher

if TYPE_CHECKING:
    from cdkd_core.host.plugin_host import PluginHost


def load_run_teacher(run_dir: Path, host: PluginHost) -> nn.Module:
    """The teacher of the run in ``run_dir`` with its saved state loaded, in eval mode."""
    from cdkd_core.config.loading import load_config

    run_dir = Path(run_dir)
    config = load_config(run_dir / "config.yaml", host=host, machine=False)
    layout = read_run_file(run_dir / "layout.json")
    slots = [NetworkSlot.from_dict(s) for s in layout["teacher"]]
    teacher = build_teacher(config.teacher, slots, host, config.seed)
    teacher.load_state_dict(read_run_file(run_dir / "teacher.safetensors"))
    return teacher.eval()
