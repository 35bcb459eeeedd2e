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
    peers: Annotated[
        bool,
        typer.Option(
            "--peers",
            help="Also fit the reference peers (logistic regression on the teacher view, and "
            "on TF-IDF of the raw texts where a domain has them) on exactly each trained "
            "domain's labelled train rows, write RUN_DIR/peers.json and show them beside the "
            "student. Loads the run's domains again (its plugins and data must be there).",
        ),
    ] = False,
) -> None:
    """Write an HTML report of a finished run: per-domain test results, learning curves,
    the knowledge space, feedback rounds, sizes and latency; one file, plots embedded.
    With --peers (or a peers.json already in RUN_DIR), also the reference peers.

    Examples:

    \b
      cdkd report runs/quickstart-20261128-003053
      cdkd report runs/quickstart-20261128-003053 --peers   # and the reference peers
    """
    from cdkd_core.artifacts.report import write_report
    from cdkd_core.artifacts.run_peers import PEERS_FILE

    path = write_report(run_dir, output, host=make_host(), peers=peers)
    if peers:
        typer.echo(f"wrote {run_dir / PEERS_FILE}")
    typer.echo(f"wrote {path}")
