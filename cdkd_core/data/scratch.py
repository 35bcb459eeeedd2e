"""Out-of-core arrays: memory-mapped files in a scratch directory instead of RAM.

A run derives large arrays from its data: standardised inputs, a quiz split, the
teacher's features and logits, knowledge vectors. ``train.out_of_core`` decides where
they live: ``memory`` keeps all of them in RAM (as before), ``disk`` writes each into a
memory-mapped file, and ``auto`` (the default) writes an array to disk when it is larger
than ``train.out_of_core_mb`` or when it derives from memory-mapped inputs (the ``arrays``
domain's ``.npy`` files). A disk array is still a plain ``torch.Tensor``: the kernel pages
it in and out, so it costs page cache, which the system reclaims, not process memory.

Large arrays are also processed in chunks of about :data:`CHUNK_BYTES` of float64, so that
no step needs a float64 copy of a whole split.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import torch

#: Bytes of float64 a chunk of a large array holds while it is processed.
CHUNK_BYTES = 16 * 2**20

Mode = Literal["auto", "memory", "disk"]

#: storage address -> the numpy memmap behind it (weakly): which tensors are memory-mapped
_MAPPED: dict[int, weakref.ref] = {}


def _register(array: np.memmap) -> torch.Tensor:
    """A tensor sharing ``array``'s memory, remembered as memory-mapped."""
    tensor = torch.from_numpy(array)
    ptr = tensor.untyped_storage().data_ptr()

    def forget(ref: weakref.ref, ptr: int = ptr) -> None:
        if _MAPPED.get(ptr) is ref:
            del _MAPPED[ptr]

    _MAPPED[ptr] = weakref.ref(array, forget)
    return tensor


def is_memory_mapped(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` (or the tensor it is a view of) is backed by a file opened with
    :func:`open_npy` or made by :meth:`ScratchSpace.empty`."""
    if tensor.device.type != "cpu":
        return False
    ref = _MAPPED.get(tensor.untyped_storage().data_ptr())
    return ref is not None and ref() is not None


def open_npy(path: Path) -> torch.Tensor:
    """A ``.npy`` file as a tensor, memory-mapped copy-on-write: nothing is read until
    used, and the file is never written. Raises ``ValueError`` for a file numpy cannot
    map (not ``.npy``, pickled objects, empty).

    What the ``arrays`` domain reads: a domain whose data is larger than memory gives such
    tensors as its views, and the run keeps what it derives from them on disk too.

    Args:
        path: A ``.npy`` file.

    Returns:
        A CPU tensor backed by the file (writes to it stay in memory).

    Raises:
        ValueError: numpy cannot map the file.
        FileNotFoundError: There is no such file.

    Examples:
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from cdkd_core.plugin_api import open_npy
        >>> np.save("x.npy", np.arange(6, dtype=np.float32).reshape(3, 2))
        >>> x = open_npy(Path("x.npy"))
        >>> x.shape, x.dtype, x[1].tolist()
        (torch.Size([3, 2]), torch.float32, [2.0, 3.0])
    """
    array = np.load(path, mmap_mode="c", allow_pickle=False)
    if not isinstance(array, np.memmap):  # numpy maps every array with data
        raise ValueError("the array holds no data")
    return _register(array)


def rows_per_chunk(x: torch.Tensor, itemsize: int = 8) -> int:
    """How many rows of ``x`` make a chunk of about :data:`CHUNK_BYTES` (at ``itemsize``
    bytes per element; float64 by default)."""
    per_row = max(1, math.prod(x.shape[1:])) * itemsize
    return max(1, CHUNK_BYTES // per_row)


def row_chunks(n: int, rows: int) -> Iterator[slice]:
    """Consecutive slices of at most ``rows`` rows covering ``0..n``."""
    for start in range(0, n, rows):
        yield slice(start, min(start + rows, n))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


class ScratchSpace:
    """Memory-mapped scratch arrays of one process, and the rule deciding which arrays go there.

    ``mode`` and ``threshold_mb`` are ``train.out_of_core`` and ``train.out_of_core_mb``.
    Files go to a directory of their own inside ``root`` (made on first use, named after
    the process, so that processes sharing a run directory never share a file), or to a
    temporary directory when ``root`` is None. :meth:`close` removes them (and ``root``
    when it is left empty); so does garbage collection of the space and interpreter exit.
    """

    def __init__(
        self, root: Path | None = None, mode: Mode = "auto", threshold_mb: float = 1024.0
    ) -> None:
        if mode not in ("auto", "memory", "disk"):
            raise ValueError(f"out-of-core mode {mode!r}: choose auto, memory or disk")
        self.root = Path(root) if root is not None else None
        self.mode = mode
        self.threshold_bytes = threshold_mb * 2**20
        self.directory: Path | None = None
        self._finalizer: weakref.finalize | None = None
        self._files: dict[str, list[Path]] = {}
        self._count = 0

    def on_disk(self, nbytes: int, mapped: bool = False) -> bool:
        """Whether an array of ``nbytes`` goes to disk (``mapped``: it derives from
        memory-mapped inputs)."""
        if self.mode == "memory":
            return False
        return self.mode == "disk" or mapped or nbytes > self.threshold_bytes

    def _directory(self) -> Path:
        if self.directory is None:
            if self.root is not None:
                self.root.mkdir(parents=True, exist_ok=True)
            made = tempfile.mkdtemp(
                prefix=f"{os.getpid()}-" if self.root is not None else "cdkd-scratch-",
                dir=self.root,
            )
            self.directory = Path(made)
            self._finalizer = weakref.finalize(self, shutil.rmtree, made, True)
        return self.directory

    def empty(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A new, writeable tensor backed by a new scratch file under ``name``; the files
        of earlier arrays of that name are deleted (tensors still mapping them keep their
        data)."""
        if 0 in shape:
            return torch.empty(shape, dtype=dtype)
        self.release(name)
        self._count += 1
        path = self._directory() / f"{_safe(name)}.{self._count}.bin"
        self._files.setdefault(name, []).append(path)
        np_dtype = torch.empty((), dtype=dtype).numpy().dtype
        return _register(np.memmap(path, dtype=np_dtype, mode="w+", shape=tuple(shape)))

    def release(self, name: str) -> None:
        """Delete the scratch files of ``name`` where the system allows (tensors still
        mapping them keep their data; a file that cannot go yet goes with the space)."""
        for path in self._files.pop(name, []):
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass

    def close(self) -> None:
        """Delete every scratch file of this space, and ``root`` if nothing else is left."""
        if self._finalizer is not None:
            self._finalizer()
        self.directory, self._finalizer = None, None
        self._files.clear()
        if self.root is not None:
            try:
                self.root.rmdir()
            except OSError:
                pass  # absent, or another process's files are still there
