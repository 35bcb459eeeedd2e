"""Knowledge from the teacher's token space: a student's token table computed by passing
every vocabulary entry through the teacher (``student.weight_init: teacher_tokens``).

A text student reads token ids; its teacher reads whole texts through a frozen encoder
(all-MiniLM-L6-v2, multilingual USE, ...). The two share no layer, so ``teacher_pca``
cannot pair them. What they do share is the vocabulary: each token can be shown to the
teacher on its own. :func:`token_table` does that and reduces the result to the student's
width (the static-embedding distillation of Model2Vec, Tulkens & van Dongen 2024):

1. **teacher outputs**: ``X[i] = teacher(token_i)`` for every token the vocabulary marks as
   a real token (padding, special and unused entries are skipped and get a zero row);
   for a transformer teacher this is the mean of the last hidden states of
   ``[CLS] token_i [SEP]``, i.e. the teacher's contextual output of the token seen alone;
2. **PCA** to the student's width ``k`` with cdkd's ``pca`` encoder (exact SVD of the
   centred outputs, each component's sign fixed so its largest entry is positive):
   ``Z = (X - mean) @ V_k``;
3. **scale**: ``Z / rms`` where ``rms`` is the root-mean-square row norm of ``Z``, so a
   table has rows of norm about 1 whatever the teacher's output scale (the student's
   optimiser then sees one scale for every teacher);
4. **frequency weighting** (SIF, Arora et al. 2017): row ``i`` times
   ``a / (a + p_i)``, ``p_i`` the token's probability, estimated by Zipf's law from its rank
   among the real tokens (``p_i ~ 1 / (rank_i + 2)``, normalised; vocabularies list tokens
   roughly by frequency), ``a = sif`` (1e-4). Frequent tokens ("the", ",") are shrunk, rare
   informative ones kept: a mean of such vectors is a frequency-weighted mean.

The table is computed once per teacher, vocabulary and width and cached under
``cache_dir() / "token_knowledge"`` as safetensors, keyed by the teacher's ``model_id``, the
SHA-256 of the vocabulary's tokens, the width and ``sif``: a changed vocabulary or width
computes a new table, an unreadable or mismatched file is recomputed, never trusted.

A student stem opts in by implementing
:class:`~cdkd_core.components.token_vocabulary.TokenKnowledgeStem` (a module with a
``vocabulary`` id and ``inject_teacher_tokens``); :func:`inject_teacher_tokens` calls every
such stem of a student. The types a stem sees (:class:`TokenVocabulary`, the
:class:`TokenTeacher` protocol, :data:`BarFactory`) and the SIF weights
(:func:`zipf_sif_weights`) are defined in :mod:`cdkd_core.components.token_vocabulary`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cdkd_core.components.token_vocabulary import (
    SIF,
    BarFactory,
    TokenKnowledgeStem,
    TokenTeacher,
    TokenVocabulary,
    zipf_sif_weights,
)
from cdkd_core.errors import ConfigError

#: Tokens shown to the teacher per call.
CHUNK = 1024


@dataclass
class TokenTable:
    """A computed (or cached) table: ``weights`` ``[V, dim]`` and how it was made."""

    weights: torch.Tensor
    model_id: str
    vocabulary: str
    digest: str
    dim: int
    sif: float | None
    explained_variance: float
    embedded: int
    path: str
    cached: bool

    def report(self) -> dict[str, Any]:
        """JSON-ready description (for ``metrics.jsonl``), without the weights."""
        out = asdict(self)
        out.pop("weights")
        return out


def reduce_token_outputs(outputs: np.ndarray, dim: int) -> tuple[np.ndarray, float]:
    """Steps 2-3: PCA (cdkd's ``pca`` encoder) of the teacher's token outputs to ``dim``
    components, then scaled to unit RMS row norm; returns the reduced rows and the
    explained-variance fraction of the kept components."""
    from cdkd_core.builtins.encoders import PCAEncoder

    x = torch.from_numpy(np.ascontiguousarray(outputs, dtype=np.float32))
    if dim > min(x.shape):
        raise ConfigError(
            f"student.weight_init: teacher_tokens: the table width {dim} exceeds what "
            f"{x.shape[0]} token outputs of width {x.shape[1]} can give ({min(x.shape)})"
        )
    pca = PCAEncoder.from_params({"dim": dim, "incremental_above": None})
    key = "vocabulary"
    pca.fit({key: x}, {key: torch.zeros(len(x), dtype=torch.long)})
    z = pca.transform(x, key).double().numpy()
    explained = float(sum(pca.explained_variance_ratio))
    rms = float(np.sqrt((z**2).sum(1).mean()))
    return z / max(rms, 1e-12), explained


def _cache_path(root: Path, model_id: str, vocab: TokenVocabulary, dim: int, sif) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id.split("@")[0]).strip("_")[:40]
    key = f"{model_id}\n{vocab.digest}\n{dim}\n{sif}".encode()
    return root / f"{slug}-{vocab.id}-d{dim}-{hashlib.sha256(key).hexdigest()[:16]}.safetensors"


def _read_cached(path: Path, meta_expected: dict[str, str], shape: tuple[int, int]):
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            if any(meta.get(k) != v for k, v in meta_expected.items()):
                return None
            weights = handle.get_tensor("weights")
        if tuple(weights.shape) != shape or not bool(torch.isfinite(weights).all()):
            return None
        return weights.float(), float(meta["explained_variance"])
    except Exception:  # an unreadable file is recomputed, never trusted
        return None


def _nullbar(description: str, total: int) -> AbstractContextManager[Callable[..., None]]:
    from contextlib import contextmanager

    @contextmanager
    def bar() -> Iterator[Callable[..., None]]:
        yield lambda status="": None

    return bar()


def token_table(
    vocab: TokenVocabulary,
    teacher: TokenTeacher,
    dim: int,
    *,
    sif: float | None = SIF,
    root: Path | None = None,
    bar: BarFactory | None = None,
) -> TokenTable:
    """The ``[vocab.size, dim]`` table of steps 1-4 (module docstring), from the cache when
    it holds one for this teacher, vocabulary, width and ``sif``; else computed (with a
    progress bar from ``bar``) and cached.

    Args:
        vocab: The student's token vocabulary.
        teacher: Has ``model_id`` (keys the cache) and ``embed_tokens(token_ids)``,
            returning float32 ``[len(token_ids), D]``: its output for each token alone.
        dim: The table's width (the student stem's).
        sif: The SIF coefficient, or ``None`` for no frequency weighting.
        root: The cache directory (default :func:`cache_dir` ``/token_knowledge``).
        bar: A progress-bar factory (default: none shown).

    Returns:
        ``TokenTable``: ``weights`` (``[vocab.size, dim]`` float32, zero rows for the ids
        not embedded), ``explained_variance`` of the kept components, ``cached``,
        ``path`` and the keys it was made with.

    Raises:
        ConfigError: The vocabulary embeds nothing, ``embed_tokens`` gives the wrong
            shape, or ``dim`` exceeds what the outputs can give.

    Examples:
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from cdkd_core.plugin_api import TokenVocabulary, token_table
        >>> class RandomTeacher:
        ...     model_id = "random-teacher"
        ...     def embed_tokens(self, token_ids):
        ...         table = np.random.default_rng(0).normal(size=(100, 16))
        ...         return table[list(token_ids)].astype(np.float32)
        >>> vocab = TokenVocabulary(id="toy", tokens=("[PAD]", *(f"w{i}" for i in range(99))),
        ...                         embed=tuple(range(1, 100)))
        >>> table = token_table(vocab, RandomTeacher(), dim=8, root=Path("tokens"))
        >>> tuple(table.weights.shape), table.cached, table.weights[0].abs().sum().item()
        ((100, 8), False, 0.0)
        >>> token_table(vocab, RandomTeacher(), dim=8, root=Path("tokens")).cached
        True
    """
    from safetensors.torch import save

    from cdkd_core.data.fetch import cache_dir
    from cdkd_core.files import atomic_write_bytes

    if not vocab.embed:
        raise ConfigError(f"vocabulary {vocab.id!r} has no token to show the teacher")
    root = Path(root) if root is not None else cache_dir() / "token_knowledge"
    path = _cache_path(root, teacher.model_id, vocab, dim, sif)
    meta = {
        "model": teacher.model_id,
        "vocabulary": vocab.id,
        "digest": vocab.digest,
        "dim": str(dim),
        "sif": str(sif),
    }
    found = _read_cached(path, meta, (vocab.size, dim))
    if found is not None:
        weights, explained = found
        return TokenTable(
            weights, teacher.model_id, vocab.id, vocab.digest, dim, sif, explained,
            len(vocab.embed), str(path), cached=True,
        )  # fmt: skip
    ids = list(vocab.embed)
    chunks = [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]
    parts = []
    with (bar or _nullbar)(f"teacher tokens ({vocab.id})", len(chunks)) as advance:
        for chunk in chunks:
            out = np.asarray(teacher.embed_tokens(chunk), dtype=np.float32)
            if out.ndim != 2 or out.shape[0] != len(chunk):
                raise ConfigError(
                    f"{type(teacher).__name__}.embed_tokens gave shape {list(out.shape)} for "
                    f"{len(chunk)} tokens; expected [{len(chunk)}, D]"
                )
            parts.append(out)
            advance()
    outputs = np.nan_to_num(np.concatenate(parts))
    reduced, explained = reduce_token_outputs(outputs, dim)
    if sif is not None:
        reduced = reduced * zipf_sif_weights(len(ids), sif)[:, None]
    table = np.zeros((vocab.size, dim), dtype=np.float32)
    table[ids] = reduced
    weights = torch.from_numpy(table)
    atomic_write_bytes(
        path, save({"weights": weights}, metadata={**meta, "explained_variance": repr(explained)})
    )
    return TokenTable(
        weights, teacher.model_id, vocab.id, vocab.digest, dim, sif, explained, len(ids),
        str(path), cached=False,
    )  # fmt: skip


def token_stems(network: nn.Module) -> dict[str, TokenKnowledgeStem]:
    """The stems of ``network`` (a MultiDomainNet) that implement
    :class:`TokenKnowledgeStem`, by stem key."""
    stems = getattr(network, "stems", {})
    return {
        key: stem
        for key, stem in stems.items()
        if callable(getattr(stem, "inject_teacher_tokens", None))
    }


def check_token_stems(network: nn.Module) -> None:
    """Refuse ``weight_init: teacher_tokens`` for a student with no stem that supports it,
    or with a stem that says it cannot (``check_teacher_tokens``, optional: e.g. a
    vocabulary whose tokens have no text to show a teacher), before anything trains."""
    stems = token_stems(network)
    if not stems:
        raise ConfigError(
            "student.weight_init: teacher_tokens needs a student stem over token ids that "
            "can take the teacher's token knowledge (e.g. the nlp plugin's static_embedding); "
            "this student has none"
        )
    for stem in stems.values():
        check = getattr(stem, "check_teacher_tokens", None)
        if callable(check):
            check()


def inject_teacher_tokens(network: nn.Module, bar: BarFactory | None = None) -> dict[str, Any]:
    """Call every token stem of ``network``; returns their reports by stem key."""
    check_token_stems(network)
    return {key: stem.inject_teacher_tokens(bar) for key, stem in token_stems(network).items()}
