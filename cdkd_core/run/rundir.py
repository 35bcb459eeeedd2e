"""The run directory: atomic writes of artifacts (files and whole directories) and an
append-only metrics log."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: never torn."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # as an ordinary open() would create it
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN and infinite floats replaced by ``None`` (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write_text(path: Path, text: str) -> None:
    """Atomic UTF-8 text write."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write (indented, keys in insertion order)."""
    atomic_write_text(path, json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """A temporary directory beside ``path`` (``.<name>.<random>.tmp``) to fill; when the
    block ends without an error its files are synced and it replaces ``path`` (an existing
    ``path`` is moved aside, then deleted), otherwise it is removed and ``path`` is left as
    it was. ``path`` is never seen half-written (a process killed between the two renames
    leaves no ``path``, and the old one in ``.<name>.<random>.old/``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        os.chmod(staging, 0o777 & ~_umask())  # as an ordinary mkdir would create it
        yield staging
        for file in staging.rglob("*"):
            if file.is_file():
                with file.open("rb+") as handle:
                    os.fsync(handle.fileno())
        aside = None
        if path.exists():
            aside = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.replace(path, aside / path.name)
        try:
            os.replace(staging, path)
        except BaseException:
            if aside is not None:  # put the old one back
                os.replace(aside / path.name, path)
            raise
        _fsync_dir(path.parent)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. a platform that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_weights(path: Path, state_dict: dict[str, Any]) -> None:
    """Save a state dict as safetensors, atomically."""
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    atomic_write_bytes(path, save(tensors))


def load_weights(path: Path) -> dict[str, Any]:
    """Load a safetensors state dict."""
    from safetensors.torch import load_file

    return load_file(str(path))


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
