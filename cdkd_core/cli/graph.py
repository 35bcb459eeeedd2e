"""``cdkd graph``: the strongest cross-domain edges of a run's knowledge graph."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cdkd_core.cli.common import stdout_is_terminal, user_errors


@user_errors
def graph(
    run_dir: Annotated[
        Path,
        typer.Argument(
            help="A run directory whose encoder built a class graph (knowledge_graph or graph).",
            metavar="RUN_DIR",
        ),
    ],
    top: Annotated[
        int,
        typer.Option("--top", "-n", min=1, help="How many cross-domain edges to show."),
    ] = 10,
) -> None:
    """Print the strongest cross-domain edges of a run's knowledge graph: which classes of
    different domains the teacher's knowledge space puts close together (cosine similarity
    of class prototypes).

    Example: cdkd graph runs/quickstart-20261128-003053 --top 5
    """
    from rich.console import Console
    from rich.table import Table

    from cdkd_core.builtins.run_graph import read_run_graph

    g = read_run_graph(run_dir)
    edges = g.cross_domain_edges()
    n_domains = len(set(g.domains))
    n_edges = int(g.edges.triu(1).sum())
    # not a terminal (a pipe, a file): wide enough that class names are never cut
    console = Console(highlight=False, width=None if stdout_is_terminal() else 200)
    console.print(
        f"knowledge graph of {run_dir} (encoder {g.encoder}): {len(g.nodes)} class nodes in "
        f"{n_domains} domain(s), {n_edges} edges, {len(edges)} across domains"
    )
    if not edges:
        console.print("no cross-domain edges (the graph has classes of one domain only)")
        return
    table = Table(title=f"strongest cross-domain edges (top {min(top, len(edges))})")
    table.add_column("#", justify="right")
    table.add_column("class")
    table.add_column("class")
    table.add_column("weight", justify="right")
    for rank, (i, j, weight) in enumerate(edges[:top], start=1):
        table.add_row(
            str(rank),
            f"{g.domains[i]}:{g.labels[i]}",
            f"{g.domains[j]}:{g.labels[j]}",
            f"{weight:.4f}",
        )
    console.print(table)
