"""A finished run's student rebuilt from its run directory alone (``config.yaml``,
``layout.json``, ``student.safetensors``, ``preprocessing.safetensors``; no data is loaded),
and each domain's path through it from the raw student view to logits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cdkd_core.artifacts.run_files import finished_run_dir, first_line
from cdkd_core.errors import CdkdError, ConfigError, ExportError
from cdkd_core.nets.network import MultiDomainNet, module_key

if TYPE_CHECKING:
    from cdkd_core.host.plugin_host import PluginHost

#: files a finished run directory holds that the export reads (summary.json: it finished)
RUN_FILES = (
    "config.yaml",
    "summary.json",
    "layout.json",
    "student.safetensors",
    "preprocessing.safetensors",
)


class Standardize(nn.Module):
    """``(x - mean) / std`` with a run's fitted statistics (float32 buffers, keepdim
    shapes such as ``[1, F]`` or ``[1, C, 1, 1]``)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().float().clone())
        self.register_buffer("std", std.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class DomainStudent(nn.Module):
    """One domain's path through the student: its raw student view -> standardisation (if the
    run standardised it) -> stem of its input space -> trunk -> head of its task -> logits,
    plus the domain's logit offset where the run moved the student's decision rule onto the
    domain's estimated class prior (``student_offsets.safetensors``)."""

    def __init__(
        self,
        net: MultiDomainNet,
        space: str,
        task: str,
        standardize: nn.Module,
        offset: torch.Tensor | None = None,
    ):
        super().__init__()
        self.standardize = standardize
        self.stem = net.stems[module_key(space)]
        self.trunk = net.trunk
        self.head = net.heads[module_key(task)]
        self.offset: torch.Tensor | None
        if offset is None:
            self.offset = None
        else:
            self.register_buffer("offset", offset.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.trunk(self.stem(self.standardize(x))))
        return logits if self.offset is None else logits + self.offset


@dataclass
class RunStudent:
    """A finished run's student, rebuilt without its data."""

    run_dir: Path
    config: Any  # PipelineConfig
    layout: dict[str, Any]
    net: MultiDomainNet
    #: ``"<domain>/student_x/mean"`` and ``.../std`` of each standardised student view
    preprocessing: dict[str, torch.Tensor]
    #: the logit offset of each domain with an estimated class prior
    offsets: dict[str, torch.Tensor] = field(default_factory=dict)

    def predicts(self, domain: str) -> bool:
        """Whether the student has a stem for the domain's input space and a head for its
        task."""
        info = self.layout["domains"][domain]
        return self.net.has_stem(info["space"]) and self.net.has_head(info["task"])

    def domain_module(self, domain: str) -> DomainStudent:
        """The domain's raw-view-to-logits module (in eval mode)."""
        info = self.layout["domains"][domain]
        standardize: nn.Module = nn.Identity()
        if info["standardized"]["student_x"]:
            keys = [f"{domain}/student_x/{stat}" for stat in ("mean", "std")]
            missing = [k for k in keys if k not in self.preprocessing]
            if missing:
                raise ExportError(
                    f"{self.run_dir / 'preprocessing.safetensors'}: no {', '.join(missing)}, "
                    f"but layout.json says domain {domain!r} is standardised"
                )
            standardize = Standardize(*(self.preprocessing[k] for k in keys))
        offset = self.offsets.get(domain)
        return DomainStudent(self.net, info["space"], info["task"], standardize, offset).eval()


def check_run_dir(run_dir: Path) -> Path:
    """``run_dir`` if it is a finished run directory, else an :class:`ExportError` naming
    what is missing."""
    run_dir = finished_run_dir(
        run_dir, ExportError, "only a completed run's student can be exported"
    )
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if missing:
        raise ExportError(
            f"{run_dir}: missing {', '.join(missing)}; a run written by an older cdkd lacks "
            "them: run the config again to export its student"
        )
    return run_dir


def load_run_student(run_dir: Path, host: PluginHost) -> RunStudent:
    """Rebuild a finished run's student from ``config.yaml`` and ``layout.json`` and load
    ``student.safetensors``; the run's plugins must be in ``host``."""
    from cdkd_core.config.loading import load_config
    from cdkd_core.files import read_run_file
    from cdkd_core.nets.assembly import NetworkSlot, build_network

    run_dir = check_run_dir(run_dir)
    config_path = run_dir / "config.yaml"
    try:
        config = load_config(config_path, host=host, machine=False)  # trained elsewhere, maybe
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(
            message if str(config_path) in message else f"{config_path}: {message}"
        ) from exc
    layout = read_layout(run_dir / "layout.json")
    try:
        slots = [NetworkSlot.from_dict(s) for s in layout["student"]]
        net = build_network(config.student, slots, host, "student", seed=0)
    except CdkdError:
        raise
    except Exception as exc:  # a layout.json edited by hand, or from another config
        raise ExportError(
            f"{run_dir / 'layout.json'} does not fit config.yaml's student: {first_line(exc)}"
        ) from exc
    state = read_run_file(run_dir / "student.safetensors")
    try:
        net.load_state_dict(state)
    except Exception as exc:  # keys and shapes that differ
        raise ExportError(
            f"{run_dir / 'student.safetensors'} does not fit the student rebuilt from "
            f"config.yaml and layout.json: {first_line(exc)}"
        ) from exc
    preprocessing = read_run_file(run_dir / "preprocessing.safetensors")
    offsets: dict[str, torch.Tensor] = {}
    if (run_dir / "student_offsets.safetensors").is_file():
        offsets = read_run_file(run_dir / "student_offsets.safetensors")
    return RunStudent(run_dir, config, layout, net.eval(), preprocessing, offsets)


def read_layout(path: Path) -> dict[str, Any]:
    """A run's ``layout.json``; a :class:`~cdkd_core.errors.RunFileError` if unreadable, an
    :class:`ExportError` if not a layout."""
    from cdkd_core.files import read_run_file

    layout = read_run_file(path)
    if not {"student", "domains"} <= set(layout):
        raise ExportError(f"{path}: not a cdkd layout (it needs 'student' and 'domains')")
    return layout


def input_dtype(name: str) -> torch.dtype:
    """The torch dtype a layout.json names (``"float32"``, ``"int64"``, ...)."""
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ExportError(f"layout.json: unknown input dtype {name!r}")
    return dtype
