"""The short digest that tells apart two data files or folders of one name in a default
task or input-space id (``tabular.<stem>.<digest>``): two different paths never share a
stem or head by accident."""

from __future__ import annotations

import hashlib
from pathlib import Path


def path_digest(path: Path | str) -> str:
    """The first 8 hex digits of the SHA-1 of ``path`` made absolute and resolved (symlinks
    followed). ``~`` is not expanded here: a loader that reads ``~/...`` as the home
    directory passes the expanded path, so the digest names the file it read.

    A domain reading a user's file puts it in its default task and input-space ids
    (``tabular.<stem>.<digest>``), so that two files of one name never share a stem or
    head by accident.

    Args:
        path: A file or folder (it need not exist).

    Returns:
        Eight lowercase hex digits.

    Examples:
        >>> from pathlib import Path
        >>> from cdkd_core.plugin_api import path_digest
        >>> digest = path_digest("data/table.csv")
        >>> len(digest), digest == path_digest(Path("data/../data/table.csv"))
        (8, True)
    """
    return hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:8]
