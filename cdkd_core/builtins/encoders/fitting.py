"""What the built-in encoders share: the domains' features pooled in sorted domain order
(whole, or read chunk by chunk), row-wise float64 transforms and the fitted-encoder base."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from cdkd_core.components.encoder import KnowledgeEncoder
from cdkd_core.data.scratch import row_chunks, rows_per_chunk

#: the smallest magnitude treated as non-zero
EPS = 1e-12
#: rows per block where a transform works block by block
CHUNK = 1024


def check_pooled(
    features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]
) -> tuple[int, int]:
    """Check the domains' features ``[N, F]`` and labels ``[N]`` agree (shapes only: no
    copy); returns the pooled row count and the feature width."""
    if not features:
        raise ValueError("fit needs the features of at least one domain")
    if set(features) != set(labels):
        raise ValueError(
            f"features and labels name different domains: {sorted(features)} vs {sorted(labels)}"
        )
    width: int | None = None
    total = 0
    for domain in sorted(features):
        x, y = features[domain], labels[domain].reshape(-1)
        if x.ndim != 2:
            raise ValueError(f"features of {domain!r} must be [N, F], got {tuple(x.shape)}")
        if width is None:
            width = x.shape[1]
        elif x.shape[1] != width:
            raise ValueError(
                f"features of {domain!r} have width {x.shape[1]}, other domains have {width}"
            )
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"{domain!r} has {x.shape[0]} feature rows but {y.shape[0]} labels")
        if y.numel() and int(y.min()) < 0:
            raise ValueError(f"labels of {domain!r} must be non-negative class indices")
        total += x.shape[0]
    if total < 2:
        raise ValueError("fit needs at least 2 samples")
    assert width is not None
    return total, width


def stack_pooled(
    features: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, list[str], list[int]]:
    """Concatenate domains in sorted order.

    Returns the float64 features ``[N, F]``, the ``(domain, class)`` pair index of each
    sample ``[N]``, the pair names ``"domain:class"`` and the per-domain sample counts.
    """
    check_pooled(features, labels)
    blocks: list[torch.Tensor] = []
    pair_index: list[torch.Tensor] = []
    names: list[str] = []
    counts: list[int] = []
    for domain in sorted(features):
        x = features[domain].detach().to("cpu", torch.float64)
        y = labels[domain].detach().to("cpu").long().reshape(-1)
        classes = torch.unique(y)  # sorted
        local = torch.searchsorted(classes, y)
        pair_index.append(local + len(names))
        names.extend(f"{domain}:{int(c)}" for c in classes)
        blocks.append(x)
        counts.append(x.shape[0])
    return torch.cat(blocks), torch.cat(pair_index), names, counts


def pooled_chunks(
    features: dict[str, torch.Tensor], rows: int, min_rows: int
) -> Iterator[np.ndarray]:
    """The domains' features concatenated in sorted order, as float64 arrays of ``rows``
    rows (the last one merged into the one before when it would be under ``min_rows``),
    read piece by piece: the pooled features are never copied whole."""
    blocks = [features[d].detach() for d in sorted(features)]
    total = sum(len(b) for b in blocks)
    starts = list(range(0, total, rows))
    if len(starts) > 1 and total - starts[-1] < min_rows:
        starts.pop()
    ends = [*starts[1:], total]
    offsets = [0]
    for b in blocks:
        offsets.append(offsets[-1] + len(b))
    for start, end in zip(starts, ends, strict=True):
        pieces = []
        for b, lo in zip(blocks, offsets, strict=False):
            a, z = max(start, lo), min(end, lo + len(b))
            if a < z:
                pieces.append(b[a - lo : z - lo].to("cpu", torch.float64))
        yield torch.cat(pieces).numpy()


def column_signs(matrix: torch.Tensor) -> torch.Tensor:
    """Signs that make the largest-magnitude entry of each column of ``matrix`` positive."""
    rows = matrix.abs().argmax(dim=0)
    picked = matrix.gather(0, rows.unsqueeze(0)).squeeze(0)
    return torch.where(picked < 0, -1.0, 1.0).to(matrix.dtype)


def as_float64_rows(features: torch.Tensor, n_features: int) -> torch.Tensor:
    """Validate a ``[N, F]`` batch and cast it to float64."""
    if features.ndim != 2 or features.shape[1] != n_features:
        raise ValueError(
            f"expected features of shape [N, {n_features}], got {tuple(features.shape)}"
        )
    return features.detach().to(torch.float64)


def rowwise(
    features: torch.Tensor, n_features: int, fn: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``fn`` (float64 rows -> float64 rows) applied to ``features`` as float32; in chunks
    of :data:`~cdkd_core.data.scratch.CHUNK_BYTES` when larger, never casting all of it."""
    x = features.detach()
    rows = rows_per_chunk(x) if x.ndim == 2 else len(x)
    if x.ndim != 2 or len(x) <= rows:
        return fn(as_float64_rows(x, n_features)).to(torch.float32)
    out = None
    for chunk in row_chunks(len(x), rows):
        z = fn(as_float64_rows(x[chunk], n_features)).to(torch.float32)
        if out is None:
            out = torch.empty(len(x), z.shape[1], dtype=torch.float32, device=z.device)
        out[chunk] = z
    assert out is not None
    return out


def column_std(x: torch.Tensor, ddof: int) -> torch.Tensor:
    """Column standard deviation; zero deviations become 1 (constant columns are left as is)."""
    std = x.std(dim=0, correction=ddof)
    return torch.where(std == 0, torch.ones_like(std), std)


class FittedEncoder(KnowledgeEncoder):
    """An encoder that refuses to transform before it is fitted or loaded."""

    _fitted: bool = False

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit or load first")
