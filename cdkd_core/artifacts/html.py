"""HTML pieces of the run report: the page's inline style sheet, escaping, number
formatting, tables, cells and embedded images."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from typing import Any

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:#222;background:#fff;max-width:1320px;margin:0 auto;padding:0 24px 40px}
h1{font-size:22px;margin:20px 0 6px}h2{font-size:18px;margin:0 0 8px;
border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:14px 0 6px}
section{margin:26px 0}nav{margin:10px 0;font-size:13px}a{color:#1a5fb4}
.facts{display:flex;flex-wrap:wrap;gap:4px 22px;font-size:13px;color:#444}
.facts b{color:#222;font-weight:600}
table{border-collapse:collapse;font-size:13px;margin:6px 0 10px}
th,td{padding:4px 10px;border-bottom:1px solid #e4e4e4;text-align:right;white-space:nowrap}
th{background:#f4f5f7;font-weight:600}th.l,td.l{text-align:left}td.sub{padding-left:26px;color:#555}
tbody tr:nth-child(even){background:#fafafa}
td.pos{color:#1e7b45;font-weight:600}td.neg{color:#b3261e;font-weight:600}td.na{color:#999}
.note{color:#555;font-size:13px;max-width:1000px}
.warn{color:#8a4b00;background:#fff6e5;border:1px solid #f0d9a8;padding:6px 10px;
border-radius:4px;font-size:13px}
img{max-width:100%;height:auto;display:block;margin:6px 0}
details{margin:6px 0}summary{cursor:pointer;color:#1a5fb4;font-size:13px}
pre{background:#f6f8fa;padding:10px;font-size:12px;overflow:auto;max-height:520px}
footer{margin-top:30px;color:#888;font-size:12px}
"""


def escape(value: Any) -> str:
    """``value`` as HTML text (quotes escaped too)."""
    return html.escape(str(value), quote=True)


def fmt_num(value: Any, digits: int = 4) -> str:
    """A number as a table shows it: ints with thousands separators, floats to ``digits``
    places, ``-`` for None."""
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def delta_of(a: Any, b: Any) -> float | None:
    """``a - b`` when both are given and the difference is finite, else None."""
    if a is None or b is None:
        return None
    value = float(a) - float(b)
    return value if math.isfinite(value) else None


def delta_cell(value: float | None) -> str:
    """A signed difference as a ``<td>``, green when positive and red when negative."""
    if value is None:
        return '<td class="na">-</td>'
    cls = "pos" if value > 0 else "neg" if value < 0 else ""
    return f'<td class="{cls}">{value:+.4f}</td>'


def html_table(header: list[str], rows: Iterable[list[str]], left: Iterable[int] = (0,)) -> str:
    """An HTML table; ``rows`` hold ready ``<td>`` cells; the header cells of the columns
    in ``left`` are left-aligned like their text cells, the others right-aligned."""
    left = set(left)
    head = "".join(
        f'<th class="l">{escape(h)}</th>' if i in left else f"<th>{escape(h)}</th>"
        for i, h in enumerate(header)
    )
    body = "".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def td(value: Any, left: bool = False) -> str:
    """One ``<td>``: text left-aligned with ``left``, else a formatted number."""
    return f'<td class="l">{escape(value)}</td>' if left else f"<td>{escape(fmt_num(value))}</td>"


def td_sig(value: Any) -> str:
    """A number to 4 significant digits (latencies span orders of magnitude)."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return td(value)
    return f"<td>{value:.4g}</td>"


def img(uri: str, alt: str) -> str:
    """An ``<img>`` of an embedded ``data:`` URI."""
    return f'<img alt="{escape(alt)}" src="{uri}">'
