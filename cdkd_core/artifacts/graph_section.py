"""The report's "Knowledge graph" section: the class graph a ``knowledge_graph`` run saved,
drawn, with its strongest cross-domain edges."""

from __future__ import annotations

from cdkd_core.artifacts.html import escape, html_table, img, td
from cdkd_core.artifacts.run_files import RunFiles, first_line


def graph_sections(run: RunFiles) -> list[tuple[str, str, str]]:
    """The "Knowledge graph" section, for a run whose encoder was ``knowledge_graph``."""
    encoder = run.config.get("encoder") if isinstance(run.config, dict) else None
    if not isinstance(encoder, dict) or encoder.get("name") != "knowledge_graph":
        return []
    return [("graph", "Knowledge graph", graph_section(run))]


def graph_section(run: RunFiles) -> str:
    """The section: how the graph was built, its drawing and its strongest cross-domain edges."""
    from cdkd_core.artifacts.plots import knowledge_graph
    from cdkd_core.builtins.run_graph import read_run_graph

    try:
        g = read_run_graph(run.run_dir)
    except Exception as exc:  # a torn or missing encoder state: the rest of the report stands
        return (
            f'<p class="warn">The knowledge graph could not be read: {escape(first_line(exc))}</p>'
        )
    labels = [f"{d}:{c}" for d, c in zip(g.domains, g.labels, strict=True)]
    n_edges = int(g.edges.triu(1).sum())
    cross = g.cross_domain_edges()
    intro = (
        f"<p>{len(g.nodes)} class nodes in {len(set(g.domains))} domain(s), {n_edges} edges "
        f"({len(cross)} across domains), weighted by the cosine similarity of the classes' "
        "mean knowledge vectors (their prototypes). Nodes sit on a circle, grouped by domain; "
        "an edge's width grows with its weight; cross-domain edges are solid black, "
        "within-domain ones dashed grey. Only edges of positive weight are drawn (the 60 "
        "strongest).</p>"
    )
    try:
        plot = img(knowledge_graph(labels, g.domains, g.similarity, g.edges), "knowledge graph")
    except Exception as exc:  # matplotlib missing or failing: keep the table
        plot = f'<p class="warn">The graph could not be drawn: {escape(first_line(exc))}</p>'
    rows = [[td(labels[i], True), td(labels[j], True), td(w)] for i, j, w in cross[:10]]
    table = (
        "<p>Strongest cross-domain edges (all of them: <code>cdkd graph RUN_DIR</code>):</p>"
        + html_table(["class", "class", "weight"], rows, left=(0, 1))
        if rows
        else "<p>No cross-domain edge.</p>"
    )
    return intro + plot + table
