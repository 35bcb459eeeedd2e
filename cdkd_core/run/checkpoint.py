"""Checkpoints a killed or interrupted run resumes from (``cdkd run --resume RUN_DIR``).

A checkpoint is one safetensors file: the tensors of the run's state (weights, optimiser
and scheduler state, random-number-generator states) and, in its metadata, the rest as
JSON with a SHA-256 over both. It is written atomically, and the one before it is kept, so
a torn or corrupted newest checkpoint falls back to the previous good one with a warning.
Nothing is unpickled: tensors come from safetensors, everything else from JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from cdkd_core.errors import ConfigError
from cdkd_core.files import atomic_write_bytes
from cdkd_core.run.state import RunState

CHECKPOINT = "checkpoint.safetensors"
PREVIOUS = "checkpoint.prev.safetensors"
FORMAT = 1


def _flatten(obj: Any, tensors: dict[str, torch.Tensor], key: str) -> Any:
    """``obj`` as JSON, its tensors moved into ``tensors`` (keys keep ints, tuples, inf)."""
    if isinstance(obj, torch.Tensor):
        tensors[key] = obj.detach().cpu().clone().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {
            "__dict__": [
                [k, _flatten(v, tensors, f"{key}/{i}")] for i, (k, v) in enumerate(obj.items())
            ]
        }
    if isinstance(obj, tuple):
        return {"__tuple__": [_flatten(v, tensors, f"{key}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_flatten(v, tensors, f"{key}/{i}") for i, v in enumerate(obj)]
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"checkpoint: cannot store a {type(obj).__name__} at {key}")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {
                (tuple(k) if isinstance(k, list) else k): _unflatten(v, tensors)
                for k, v in obj["__dict__"]
            }
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
        if "__float__" in obj:
            return float(obj["__float__"])
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def _digest(meta: str, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(meta.encode("utf-8"))
    for key in sorted(tensors):
        t = tensors[key]
        h.update(f"{key}|{t.dtype}|{list(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    """Write ``state`` as the run's newest checkpoint, keeping the previous one."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    meta = json.dumps({"format": FORMAT, "state": _flatten(state, tensors, "s")})
    data = save(tensors, metadata={"state": meta, "sha256": _digest(meta, tensors)})
    run_dir = Path(run_dir)
    current = run_dir / CHECKPOINT
    if current.exists():
        os.replace(current, run_dir / PREVIOUS)
    atomic_write_bytes(current, data)


def _read(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    tensors = {}
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        for key in handle.keys():
            tensors[key] = handle.get_tensor(key)
    meta, digest = metadata.get("state"), metadata.get("sha256")
    if meta is None or digest is None:
        raise ValueError("not a cdkd checkpoint")
    if _digest(meta, tensors) != digest:
        raise ValueError("checksum mismatch")
    payload = json.loads(meta)
    if payload.get("format") != FORMAT:
        raise ValueError(f"checkpoint format {payload.get('format')}, expected {FORMAT}")
    return _unflatten(payload["state"], tensors)


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The newest good checkpoint of a run (the previous one, with a warning, when the
    newest is torn or corrupted); None when the run stopped before its first checkpoint;
    a :class:`ConfigError` when checkpoints exist but none is usable."""
    run_dir = Path(run_dir)
    problems = []
    for name in (CHECKPOINT, PREVIOUS):
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            state = _read(path)
        except Exception as exc:  # safetensors raises its own types for a torn file
            problems.append(f"{name}: {exc}")
            continue
        if problems:
            warnings.warn(
                f"{run_dir}: the newest checkpoint is unusable ({problems[0]}); "
                f"resuming from the previous one ({name})",
                stacklevel=2,
            )
        return state
    if not problems:
        return None
    raise ConfigError(f"--resume {run_dir}: no usable checkpoint ({'; '.join(problems)})")


class Checkpointer:
    """Saves and loads a run's :class:`~cdkd_core.run.state.RunState` in its directory.

    The runner is given one (:func:`~cdkd_core.run.runner.run_pipeline`'s
    ``checkpointer``); a test passes a subclass that records or stops after a save.
    """

    def save(self, run_dir: Path, state: RunState) -> None:
        """Write ``state`` as the run's newest checkpoint, keeping the previous one."""
        save_checkpoint(run_dir, state.to_dict())

    def load(self, run_dir: Path) -> RunState | None:
        """The run's newest good state (see :func:`load_checkpoint`); None without one."""
        data = load_checkpoint(run_dir)
        return None if data is None else RunState.from_dict(data)
