"""A finished run directory as the artifacts read it: the finished-run check that the report
and the export share, and the files the report reads (:class:`RunFiles`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdkd_core.errors import CdkdError, ReportError


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def finished_run_dir(run_dir: Path, error: type[CdkdError], unfinished: str) -> Path:
    """``run_dir`` if it is a run directory whose run finished (it has ``config.yaml`` and
    ``summary.json``), else an ``error`` naming what is missing; ``unfinished`` ends the
    message of a run without a ``summary.json`` (what needs a completed run, and what to do)."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise error(f"{run_dir}: no such run directory")
    if not run_dir.is_dir():
        raise error(f"{run_dir}: not a directory (give the run directory itself)")
    if not (run_dir / "config.yaml").is_file():
        raise error(f"{run_dir}: not a run directory (it has no config.yaml)")
    if not (run_dir / "summary.json").is_file():
        raise error(f"{run_dir}: the run has not finished (no summary.json); {unfinished}")
    return run_dir


@dataclass
class RunFiles:
    """What the report reads from a finished run directory."""

    run_dir: Path
    summary: dict[str, Any]
    records: list[dict[str, Any]]
    config: dict[str, Any]
    config_text: str
    layout: dict[str, Any]


def read_run(run_dir: Path) -> RunFiles:
    """Read a finished run directory; a :class:`ReportError` names what is missing."""
    from cdkd_core.files import read_run_file
    from cdkd_core.run.rundir import read_metrics

    run_dir = finished_run_dir(
        run_dir,
        ReportError,
        f"a report needs a completed run: continue it with `cdkd run --resume {Path(run_dir)}`",
    )
    summary = read_run_file(run_dir / "summary.json")
    config = read_run_file(run_dir / "config.yaml")
    config_text = (run_dir / "config.yaml").read_text(encoding="utf-8")  # read just above
    layout_path = run_dir / "layout.json"
    layout = read_run_file(layout_path) if layout_path.is_file() else {}
    metrics = run_dir / "metrics.jsonl"
    try:
        records = read_metrics(metrics) if metrics.is_file() else []
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReportError(f"{metrics}: unreadable ({first_line(exc)})") from exc
    if not isinstance(summary.get("domains"), dict):
        raise ReportError(f"{run_dir / 'summary.json'}: not a cdkd summary (no 'domains')")
    return RunFiles(run_dir, summary, records, config, config_text, layout)


def describe_components(run: RunFiles) -> dict[str, str]:
    """Short descriptions of the configured encoder, losses and feedback."""
    config = run.config

    def ref(item: Any) -> str:
        if not isinstance(item, dict):
            return "?"
        params = item.get("params") or {}
        inner = ", ".join(f"{k}={v}" for k, v in params.items())
        return f"{item.get('name', '?')}" + (f"({inner})" if inner else "")

    losses = [
        f"{x.get('weight', 1.0):g}·{ref(x)}" if isinstance(x, dict) else "?"
        for x in config.get("losses") or []
    ]
    return {
        "encoder": ref(config.get("encoder")),
        "losses": " + ".join(losses) or "-",
        "feedback": ref(config.get("feedback")),
    }
