"""The catalogue of known plugins (``registry.yaml``): what exists, which package, where."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # cdkd_core/


def registry_path() -> Path | None:
    """``registry.yaml`` inside the installed package, else at the repository root."""
    for candidate in (PACKAGE_DIR / "registry.yaml", PACKAGE_DIR.parent / "registry.yaml"):
        if candidate.is_file():
            return candidate
    return None


def repository_root() -> Path | None:
    """The source checkout this package runs from, when it runs from one."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "plugins").is_dir() else None


@lru_cache(maxsize=1)
def catalog() -> list[dict[str, Any]]:
    """Entries of ``registry.yaml`` (name, package, path, kinds, summary, components)."""
    path = registry_path()
    if path is None:
        return []
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return list(data.get("plugins", []))


def find_entry(name: str) -> dict[str, Any] | None:
    """The catalogue entry whose plugin name or package name is ``name``."""
    for entry in catalog():
        if name in (entry.get("name"), entry.get("package")):
            return entry
    return None


def provider_of(kind: str, component: str) -> dict[str, Any] | None:
    """The catalogue entry that provides ``component`` of ``kind``, if any is known.

    A domain ``<plugin>.<dataset>`` belongs to plugin ``<plugin>``; other components are
    looked up in each entry's ``components`` lists.
    """
    for entry in catalog():
        listed = (entry.get("components") or {}).get(kind, [])
        if component in listed:
            return entry
        if kind == "domains" and component.split(".", 1)[0] == entry.get("name"):
            return entry
    return None
