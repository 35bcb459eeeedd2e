"""``cdkd report``: a finished run's results as one self-contained HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cdkd_core.cli.common import make_host, user_errors


@user_errors
def report(
    run_dir: Annotated[
        Path,
        typer.Argument(help="A finished run directory (it holds summary.json).", metavar="RUN_DIR"),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write the HTML file (default: RUN_DIR/report.html).",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write an HTML report of a finished run: per-domain test results, learning curves,
    the knowledge space, feedback rounds, sizes and latency; one file, plots embedded.

    Example: cdkd report runs/quickstart-20261128-003053
    """
    from cdkd_core.artifacts.report import write_report

    path = write_report(run_dir, output, host=make_host())
    typer.echo(f"wrote {path}")
