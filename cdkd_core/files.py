"""Atomic file writes (files and whole directories), strict JSON and safetensors weights:
the low-level writing every layer uses, so a run killed at any moment leaves the old file
or the new one, never a torn one; and :func:`read_run_file`, the one reader of the files a
run directory holds, so an unreadable one is one message naming it."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: never torn.

    The temporary file (``.<name>.<random>.tmp`` beside ``path``) is synced before the
    rename, so a process killed at any moment leaves the old file or the new one. Missing
    parent directories are created.

    Args:
        path: The file to write (replaced if it exists).
        data: Its new content.

    Raises:
        OSError: The file cannot be written (nothing is left behind).

    Examples:
        >>> from pathlib import Path
        >>> from cdkd_core.plugin_api import atomic_write_bytes
        >>> atomic_write_bytes(Path("out/blob.bin"), b"\\x00\\x01")
        >>> Path("out/blob.bin").read_bytes()
        b'\\x00\\x01'
    """
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
    """Atomic UTF-8 text write.

    Args:
        path: The file to write (replaced if it exists).
        text: Its new content.

    Raises:
        OSError: The file cannot be written.

    Examples:
        >>> from pathlib import Path
        >>> from cdkd_core.plugin_api import atomic_write_text
        >>> atomic_write_text(Path("notes.txt"), "größer\\n")
        >>> Path("notes.txt").read_text(encoding="utf-8")
        'größer\\n'
    """
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write (indented, keys in insertion order).

    Strict JSON: NaN and infinite floats are written as ``null``.

    Args:
        path: The file to write (replaced if it exists).
        obj: What ``json.dumps`` can write (dicts, lists, str, numbers, bools, None).

    Raises:
        TypeError: ``obj`` holds something JSON cannot.
        OSError: The file cannot be written.

    Examples:
        >>> import json
        >>> from pathlib import Path
        >>> from cdkd_core.plugin_api import atomic_write_json
        >>> atomic_write_json(Path("meta.json"), {"dim": 4, "scale": float("nan")})
        >>> json.loads(Path("meta.json").read_text())
        {'dim': 4, 'scale': None}
    """
    atomic_write_text(path, json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """A temporary directory beside ``path`` (``.<name>.<random>.tmp``) to fill; when the
    block ends without an error its files are synced and it replaces ``path`` (an existing
    ``path`` is moved aside, then deleted), otherwise it is removed and ``path`` is left as
    it was. ``path`` is never seen half-written (a process killed between the two renames
    leaves no ``path``, and the old one in ``.<name>.<random>.old/``).

    Args:
        path: The directory to write (replaced whole if it exists).

    Yields:
        The temporary directory to write the files into.

    Raises:
        OSError: The directory cannot be created or renamed.

    Examples:
        >>> from pathlib import Path
        >>> from cdkd_core.plugin_api import atomic_dir
        >>> with atomic_dir(Path("model")) as staging:
        ...     _ = (staging / "config.json").write_text("{}")
        ...     _ = (staging / "weights.bin").write_bytes(b"")
        >>> sorted(p.name for p in Path("model").iterdir())
        ['config.json', 'weights.bin']
    """
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
    """Save a state dict as safetensors, atomically.

    Tensors are detached, made contiguous and moved to the CPU; never pickle.

    Args:
        path: The ``.safetensors`` file to write.
        state_dict: Name -> tensor (e.g. ``module.state_dict()``; tensors must not share
            memory).

    Raises:
        OSError: The file cannot be written.

    Examples:
        >>> from pathlib import Path
        >>> from torch import nn
        >>> from cdkd_core.plugin_api import load_weights, save_weights
        >>> save_weights(Path("stem.safetensors"), nn.Linear(3, 2).state_dict())
        >>> sorted(load_weights(Path("stem.safetensors")))
        ['bias', 'weight']
    """
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    atomic_write_bytes(path, save(tensors))


def load_weights(path: Path) -> dict[str, Any]:
    """Load a safetensors state dict.

    Args:
        path: A ``.safetensors`` file (e.g. written by :func:`save_weights`).

    Returns:
        Name -> CPU tensor, for ``module.load_state_dict``.

    Raises:
        FileNotFoundError: There is no such file.

    Examples:
        >>> from pathlib import Path
        >>> import torch
        >>> from torch import nn
        >>> from cdkd_core.plugin_api import load_weights, save_weights
        >>> stem = nn.Linear(3, 2)
        >>> save_weights(Path("stem.safetensors"), stem.state_dict())
        >>> again = nn.Linear(3, 2)
        >>> _ = again.load_state_dict(load_weights(Path("stem.safetensors")))
        >>> torch.equal(again.weight, stem.weight)
        True
    """
    from safetensors.torch import load_file

    return load_file(str(path))


#: what :func:`read_run_file` reads, by suffix
RUN_FILE_KINDS = {".safetensors": "safetensors", ".json": "JSON", ".yaml": "YAML"}


def read_run_file(path: Path, expect: type | None = dict) -> Any:
    """One file of a run directory, by its suffix: a ``.safetensors`` file as a state dict
    (name -> CPU tensor; never pickle), ``.json`` as parsed JSON, ``.yaml`` as safe YAML.

    Every reader of run files (export, predict, report, graph, resume, a teacher
    checkpoint) goes through it, so a missing, unreadable or corrupt file ends as one
    message naming it rather than a library's traceback.

    Args:
        path: The file.
        expect: The type the parsed JSON or YAML must be (default ``dict``; ``None``: any).

    Returns:
        The tensors, or the parsed document.

    Raises:
        RunFileError: The file is missing, unreadable, not of its suffix's format, or not
            an ``expect``.
    """
    from cdkd_core.errors import RunFileError

    path = Path(path)
    kind = RUN_FILE_KINDS.get(path.suffix)
    if kind is None:
        raise ValueError(f"read_run_file reads {sorted(RUN_FILE_KINDS)} files, not {path.name}")
    if not path.is_file():
        raise RunFileError(f"{path}: missing" + (" (a directory)" if path.is_dir() else ""))
    try:
        if kind == "safetensors":
            return load_weights(path)
        text = path.read_text(encoding="utf-8")
        if kind == "JSON":
            value = json.loads(text)
        else:
            import yaml

            value = yaml.safe_load(text)
    except Exception as exc:  # safetensors', json's and yaml's own errors, OSError, decoding
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunFileError(f"{path}: not a readable {kind} file ({reason})") from exc
    if expect is not None and kind != "safetensors" and not isinstance(value, expect):
        raise RunFileError(
            f"{path}: expected a {kind} {expect.__name__}, found {type(value).__name__}"
        )
    return value
