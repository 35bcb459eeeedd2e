"""The run directory: where a run's directory is made (checked first) and its append-only
metrics log. The atomic writes its artifacts use live in :mod:`cdkd_core.files`."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from cdkd_core.config.models import RUN_NAME
from cdkd_core.files import json_safe


def check_output_root(root: Path) -> None:
    """Refuse, before anything is written, an output directory a run directory cannot be
    made in: an existing non-directory, a directory that is not writable, or a path that
    cannot be created (a file, or a directory that is not writable, on the way to it)."""
    from cdkd_core.errors import ConfigError

    root = Path(root)
    where = f"output directory {str(root)!r}"
    try:
        if root.exists():
            if not root.is_dir():
                raise ConfigError(f"{where} exists and is not a directory")
            if not os.access(root, os.W_OK | os.X_OK):
                raise ConfigError(f"{where} is not writable")
            return
        parent = root.absolute().parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise ConfigError(f"{where} cannot be created: {str(parent)!r} is not a directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(f"{where} cannot be created: {str(parent)!r} is not writable")
    except (OSError, ValueError) as exc:  # e.g. a name too long, a NUL byte
        raise ConfigError(f"{where} cannot be used: {exc}") from None


def create_run_dir(root: Path, name: str) -> Path:
    """Make ``root/<name>-<timestamp>`` (suffixed if taken); ``name`` may not leave ``root``.
    A ``root`` that cannot hold it is a :class:`~cdkd_core.errors.ConfigError`."""
    if not RUN_NAME.match(name):
        raise ValueError(f"run name {name!r} must match {RUN_NAME.pattern}")
    from cdkd_core.errors import ConfigError

    root = Path(root)
    check_output_root(root)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        root.mkdir(parents=True, exist_ok=True)
        for attempt in range(1000):
            suffix = "" if attempt == 0 else f"-{attempt}"
            path = root / f"{name}-{stamp}{suffix}"
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path
    except OSError as exc:  # e.g. a full disk, or a change since the check
        raise ConfigError(
            f"output directory {str(root)!r}: cannot create a run directory: {exc}"
        ) from None
    raise RuntimeError(f"could not create a run directory under {root}")


class MetricsLog:
    """Append-only JSON-lines log, flushed per record."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._handle = self.path.open("a", encoding="utf-8")
        self._start = time.perf_counter()

    def log(self, **record: Any) -> None:
        """Append one record with the seconds since the log opened."""
        record = {"t": round(time.perf_counter() - self._start, 4), **record}
        self._handle.write(json.dumps(json_safe(record), allow_nan=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        """Close the file."""
        self._handle.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Read a metrics log; a torn last line (a write cut short) is ignored, a bad line
    anywhere else is an error."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(f"{path}, line {number}: not a JSON record") from None
    return records
