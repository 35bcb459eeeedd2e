"""The report's "Reference peers" section: per trained domain, the student, baseline and
teacher beside simple classifiers fitted on the same labelled train rows (``peers.json``,
written by ``cdkd report --peers``: :mod:`cdkd_core.artifacts.run_peers`)."""

from __future__ import annotations

from typing import Any

from cdkd_core.artifacts.html import delta_cell, delta_of, escape, html_table, td, td_sig
from cdkd_core.artifacts.run_files import RunFiles
from cdkd_core.artifacts.run_peers import read_peers
from cdkd_core.errors import ReportError

MODELS = ("teacher", "student", "baseline")


def peer_sections(run: RunFiles) -> list[tuple[str, str, str]]:
    """The "Reference peers" section, for a run directory that holds ``peers.json``."""
    try:
        peers = read_peers(run.run_dir)
    except ReportError as exc:  # the rest of the report stands
        return [("peers", "Reference peers", f'<p class="warn">{escape(exc)}</p>')]
    if peers is None:
        return []
    return [("peers", "Reference peers", peers_section(run, peers))]


def _names(domains: dict[str, Any]) -> list[str]:
    """The peers of any domain, in the order :data:`~cdkd_core.stages.peers.PEERS` lists
    them, others after."""
    from cdkd_core.stages.peers import PEERS

    found = {p for fits in domains.values() if isinstance(fits, dict) for p in fits}
    return [p for p in PEERS if p in found] + sorted(found - set(PEERS))


def peers_section(run: RunFiles, peers: dict[str, Any]) -> str:
    """The section's note, its table of headline metrics and every peer metric (folded)."""
    domains: dict[str, Any] = peers["domains"]
    names = _names(domains)
    header = ["domain", "role", "metric", "labelled", *MODELS]
    for peer in names:
        header += [peer, f"{peer} C"]
    header.append("Δ student vs best peer")
    rows, details = [], []
    for name, fits in domains.items():
        fits = fits if isinstance(fits, dict) else {}
        d = run.summary["domains"].get(name) or {}
        labelled = next(
            (f.get("labelled") for f in fits.values()), (d.get("sizes") or {}).get("labelled")
        )
        cells = [td(name, True), td(d.get("role"), True), td(d.get("metric"), True)]
        cells += [td(labelled), *(td(d.get(m)) for m in MODELS)]
        for peer in names:
            fit = fits.get(peer) or {}
            cells += [td(fit.get("headline")), td_sig(fit.get("C"))]
            for metric, value in (fit.get("metrics") or {}).items():
                details.append([td(name, True), td(peer, True), td(metric, True), td(value)])
        best = [f.get("headline") for f in fits.values() if f.get("headline") is not None]
        cells.append(delta_cell(delta_of(d.get("student"), max(best) if best else None)))
        rows.append(cells)
    folded = (
        "<details><summary>every metric of every peer</summary>"
        + html_table(["domain", "peer", "metric", "value"], details, left=range(3))
        + "</details>"
        if details
        else ""
    )
    return (
        '<p class="note">Simple classifiers fitted on exactly the labelled train rows the '
        "student learns from (<b>labelled</b>), headline metric on the test split: "
        "<b>logreg</b>, logistic regression on the teacher view (standardised, flattened); "
        "<b>tfidf_logreg</b>, for domains with raw texts, the same on TF-IDF word uni- and "
        "bigrams of the labelled train texts. Each peer's <b>C</b> was chosen from "
        f"{escape(', '.join(f'{c:g}' for c in peers.get('c_grid') or []))} by the headline "
        "metric on the labelled val rows (1 where that is undefined); the test split chose "
        "nothing. A dash: the domain has no labelled train rows of two classes, or no raw "
        "texts. <b>Δ student vs best peer</b> is student - the best peer.</p>"
        + html_table(header, rows, left=range(3))
        + folded
    )
