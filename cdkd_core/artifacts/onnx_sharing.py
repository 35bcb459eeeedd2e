"""One copy of the weights that several exported ONNX graphs hold alike.

Every domain's graph carries its stem, trunk and head, so domains that share a stem (the
four sentiment domains share the text stem and its 7.9 MB token table) would each carry a
copy of it. After the graphs are written, every initializer of at least
:data:`SHARE_MIN_BYTES` whose bytes (and type and shape) two or more graphs hold exactly
is written once into :data:`SHARED_WEIGHTS` beside them, and each of those graphs points at
it as ONNX external data (``location``, ``offset``, ``length``, relative to the graph's
folder). Everything else stays inside its graph.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: the shared external-data file, beside the graphs in ``export/``
SHARED_WEIGHTS = "shared.onnx_data"
#: initializers smaller than this stay inside their graph
SHARE_MIN_BYTES = 1 << 16
#: each tensor's offset in the shared file is a multiple of this (a page: lets a runtime map
#: the file rather than copy it)
ALIGNMENT = 4096


def share_initializers(
    paths: Sequence[Path], target: Path, min_bytes: int = SHARE_MIN_BYTES
) -> dict[str, Any] | None:
    """Move the initializers that two or more of the ONNX files ``paths`` hold byte for byte
    (at least ``min_bytes`` each) into one external-data file ``target`` (in the same
    folder), rewriting those files to reference it. Returns what was shared (``bytes`` of
    ``target``, ``tensors``, the file names of the ``graphs`` that now read it), or ``None``
    when nothing was (and ``target`` is not written)."""
    import onnx
    from onnx.external_data_helper import set_external_data

    models = {Path(p): onnx.load(str(p), load_external_data=False) for p in paths}
    groups: dict[tuple[int, tuple[int, ...], str], list[tuple[Path, Any]]] = {}
    for path, model in models.items():
        for tensor in model.graph.initializer:
            if (
                tensor.data_location == onnx.TensorProto.EXTERNAL
                or not tensor.HasField("raw_data")
                or len(tensor.raw_data) < min_bytes
            ):
                continue
            digest = hashlib.sha256(tensor.raw_data).hexdigest()
            key = (tensor.data_type, tuple(tensor.dims), digest)
            groups.setdefault(key, []).append((path, tensor))
    shared = {
        key: members
        for key, members in groups.items()
        if len({path for path, _ in members}) > 1
        and all(t.raw_data == members[0][1].raw_data for _, t in members[1:])  # the very bytes
    }
    if not shared:
        return None
    changed: set[Path] = set()
    with open(target, "wb") as out:
        for members in shared.values():
            data = members[0][1].raw_data
            out.write(b"\0" * (-out.tell() % ALIGNMENT))
            offset = out.tell()
            out.write(data)
            for path, tensor in members:
                set_external_data(tensor, target.name, offset=offset, length=len(data))
                tensor.ClearField("raw_data")
                changed.add(path)
        size = out.tell()
    for path in changed:
        onnx.save(models[path], str(path))
    return {
        "bytes": size,
        "tensors": len(shared),
        "graphs": sorted(p.name for p in changed),
    }
