"""Build helpers of the documentation site (``mkdocs.yml``), not a page of it.

- :class:`SphinxRoles`, a griffe extension: the code's docstrings cross-reference with
  Sphinx roles (``:class:`DataError```), which Markdown shows as they are written. It
  turns a role naming something the API reference documents into a link to its entry,
  and any other role into code.
- :func:`on_page_markdown`, a MkDocs hook: the pages link to files of the repository
  outside ``docs/`` (``../examples/cross_domain.yaml``), which work where the repository
  is browsed but are not part of the site. In the site such a link becomes its text with
  the file's path as code; a link to a file that does not exist is left alone, for
  ``mkdocs build --strict`` to report.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import griffe

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
ROLE = re.compile(r":(?:py:)?(?:class|func|meth|data|attr|mod|exc|obj|const):`(~?)([^`]+)`")
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\((\.\./[^)#\s]+)(#[^)\s]*)?\)")


@cache
def documented() -> dict[str, str]:
    """Short name -> the identifier of its entry in the API reference (``::: X`` lines)."""
    entries: dict[str, str] = {}
    for page in sorted((DOCS / "api").glob("*.md")):
        for line in page.read_text(encoding="utf-8").splitlines():
            if line.startswith("::: "):
                identifier = line[4:].strip()
                entries.setdefault(identifier.rsplit(".", 1)[-1], identifier)
    return entries


def convert_roles(text: str) -> str:
    """``text`` with each Sphinx role as a link to its API entry, or else as code."""

    def replace(match: re.Match[str]) -> str:
        target = match.group(2).strip().lstrip(".")
        short = target.rsplit(".", 1)[-1]
        shown = short if match.group(1) else target
        identifier = documented().get(short)
        return f"[`{shown}`][{identifier}]" if identifier else f"`{shown}`"

    return ROLE.sub(replace, text)


class SphinxRoles(griffe.Extension):
    """Sphinx roles in docstrings become Markdown links (or code)."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ":`" in obj.docstring.value:
            obj.docstring.value = convert_roles(obj.docstring.value)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Links from a page to existing repository files outside ``docs/`` become text."""
    here = (DOCS / page.file.src_uri).parent

    def replace(match: re.Match[str]) -> str:
        target = (here / match.group(2)).resolve()
        if target.is_relative_to(DOCS) or not target.is_relative_to(ROOT) or not target.exists():
            return match.group(0)
        text, path = match.group(1), target.relative_to(ROOT).as_posix()
        return text if text.strip("`") == path else f"{text} (`{path}`)"

    return LINK.sub(replace, markdown)
