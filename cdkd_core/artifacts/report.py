"""``cdkd report``: one self-contained HTML page about a finished run.

It reads the run directory (``summary.json``, ``metrics.jsonl``, ``config.yaml``,
``layout.json``, ``knowledge_sample.safetensors`` where the run saved one, and
``peers.json`` where ``cdkd report --peers`` wrote one) and writes ``report.html``: the
per-domain test results, the reference peers, the teacher chosen per task (``teacher:
auto``), learning curves per stage and round, a 2-D view of the knowledge space, the class
graph of a ``knowledge_graph`` run, the feedback rounds, and sizes and latencies. Styles are
inline and plots are embedded PNG ``data:`` URIs: the file needs nothing else to be read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from cdkd_core.artifacts.curves import curves_section
from cdkd_core.artifacts.graph_section import graph_sections
from cdkd_core.artifacts.html import CSS, escape
from cdkd_core.artifacts.knowledge_space import knowledge_section
from cdkd_core.artifacts.peer_section import peer_sections
from cdkd_core.artifacts.run_files import RunFiles, describe_components, read_run
from cdkd_core.artifacts.summary_sections import (
    config_section,
    results_section,
    rounds_section,
    sizes_section,
    targets_section,
    teacher_section,
)
from cdkd_core.errors import ReportError

if TYPE_CHECKING:
    from cdkd_core.host.plugin_host import PluginHost

#: the report's file name in the run directory
REPORT = "report.html"


def write_report(
    run_dir: Path, output: Path | None = None, *, host: PluginHost, peers: bool = False
) -> Path:
    """Write the report of the finished run in ``run_dir`` to ``output`` (default
    ``run_dir/report.html``) atomically, and return its path. With ``peers`` the run's
    reference peers are computed first and written to ``run_dir/peers.json``
    (:mod:`cdkd_core.artifacts.run_peers`); without, an existing ``peers.json`` is shown.
    ``host``: the plugin host the run's domains (peers, a recomputed knowledge sample) come
    from."""
    from cdkd_core.artifacts.run_peers import write_peers
    from cdkd_core.files import atomic_write_text

    run = read_run(run_dir)
    path = Path(output) if output is not None else run.run_dir / REPORT
    if path.is_dir():
        raise ReportError(f"--output {path}: is a directory; give a file name")
    if peers:
        write_peers(run.run_dir, host)
    atomic_write_text(path, render_report(run, host))
    return path


def render_report(run: RunFiles, host: PluginHost) -> str:
    """The report's HTML (``host``: the plugin host a run's knowledge sample is
    recomputed with, where the run saved none)."""
    from cdkd_core.version import __version__

    title = f"cdkd run {run.run_dir.resolve().name}"
    sections = [
        ("results", "Test results", results_section(run)),
        *peer_sections(run),
        *[("teacher", "Teacher choice", t) for t in [teacher_section(run)] if t],
        *[("targets", "Targets", t) for t in [targets_section(run)] if t],
        ("curves", "Learning curves", curves_section(run)),
        ("knowledge", "Knowledge space", knowledge_section(run, host)),
        *graph_sections(run),
        ("rounds", "Feedback rounds", rounds_section(run)),
        ("sizes", "Sizes and latency", sizes_section(run)),
        ("config", "Config", config_section(run)),
    ]
    nav = " · ".join(f'<a href="#{key}">{escape(name)}</a>' for key, name, _ in sections)
    body = "\n".join(
        f'<section id="{key}"><h2>{escape(name)}</h2>\n{content}\n</section>'
        for key, name, content in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
        f"<header><h1>{escape(title)}</h1>{_overview(run)}<nav>{nav}</nav></header>\n"
        f"{body}\n"
        f"<footer>Written by cdkd {escape(__version__)} from {escape(run.run_dir.resolve().name)}/ "
        "(summary.json, metrics.jsonl, config.yaml, layout.json).</footer>\n"
        "</body></html>\n"
    )


def _overview(run: RunFiles) -> str:
    s, train = run.summary, run.config.get("train") or {}
    roles: dict[str, int] = {}
    for d in s["domains"].values():
        roles[d.get("role", "?")] = roles.get(d.get("role", "?"), 0) + 1
    comps = describe_components(run)
    facts = [
        ("domains", ", ".join(f"{n} {r}" for r, n in roles.items())),
        ("encoder", comps["encoder"]),
        ("losses", comps["losses"]),
        ("feedback", comps["feedback"]),
        ("rounds", s.get("rounds")),
        ("epochs", train.get("epochs")),
        ("seed", s.get("seed")),
        ("device", f"{s.get('device', '?')}, {s.get('threads', '?')} thread(s)"),
        ("processes", s.get("processes", 1)),
        ("wall time", f"{s.get('wall_s', math.nan):.1f} s"),
    ]
    return (
        '<div class="facts">'
        + "".join(f"<span><b>{escape(k)}</b> {escape(v)}</span>" for k, v in facts)
        + "</div>"
    )
