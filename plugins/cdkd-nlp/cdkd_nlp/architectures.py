"""Text stems: ``minilm`` for the teacher (over cached sentence embeddings);
``static_embedding`` for the student (over the teacher tokenizer's ids, its table able to
start from the teacher's tokens) and ``embedding_bag`` (over hashed n-gram ids)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from cdkd_core.plugin_api import (
    SIF,
    Architecture,
    BarFactory,
    ComponentConfig,
    ConfigError,
    NetworkSlot,
    token_table,
    zipf_sif_weights,
)
from cdkd_nlp.resources import HASHED, VOCAB_SIZE
from cdkd_nlp.student_tokenizers import StudentTokenizer, student_tokenizer
from cdkd_nlp.token_teachers import EmbedderTokenTeacher, token_teacher


class MiniLMStem(Architecture):
    """Teacher text stem over cached 384-d all-MiniLM-L6-v2 sentence embeddings.

    LayerNorm -> dropout -> Linear -> LayerNorm -> GELU to the trunk's width.

    MiniLM itself is frozen and runs once per text, when a domain is loaded (its vectors are
    cached on disk); this stem is what the teacher trains on top of it.
    """

    name = "minilm"
    modalities: ClassVar[tuple[str, ...]] = ("text",)
    default_for: ClassVar[tuple[str, ...]] = ("text:teacher",)

    class Config(ComponentConfig):
        """Dropout on the embedding."""

        dropout: float = Field(0.1, ge=0, lt=1, description="Dropout on the input embedding.")

    def build_stem(self, input_shape: tuple[int, ...], out_features: int) -> nn.Module:
        """``[N, 384]`` embeddings to ``[N, out_features]``."""
        if len(input_shape) != 1:
            raise ConfigError(
                f"teacher.stems.text: minilm reads sentence-embedding vectors [N, D], got "
                f"inputs of shape [N, {', '.join(map(str, input_shape))}]"
            )
        (dim,) = input_shape
        layers: list[nn.Module] = [nn.LayerNorm(dim)]
        if self.config.dropout > 0:
            layers.append(nn.Dropout(self.config.dropout))
        layers += [nn.Linear(dim, out_features), nn.LayerNorm(out_features), nn.GELU()]
        return nn.Sequential(*layers)


def _capturing() -> bool:
    """Whether ``torch.jit.trace`` or ``torch.export`` is capturing a graph."""
    exporting = getattr(torch.compiler, "is_exporting", None)  # torch >= 2.4
    return torch.jit.is_tracing() or (exporting is not None and bool(exporting()))


def check_token_ids(ids: torch.Tensor, stem: str, vocab_size: int, vocabulary: str) -> None:
    """Refuse inputs that are not integer ids ``[N, L]``, and ids outside
    ``0..vocab_size-1``: that check reads the data, which a captured graph (torch.jit.trace,
    torch.export, ONNX: ``cdkd export``) cannot hold, so it runs eagerly only."""
    if ids.is_floating_point() or ids.dim() != 2:
        raise ConfigError(
            f"{stem} reads integer token ids [N, L] (the nlp domains' student view); got "
            f"{ids.dtype} inputs of shape {list(ids.shape)}"
        )
    if ids.numel() and not _capturing():
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= vocab_size:
            raise ConfigError(
                f"student.stems.text: a token id is {high if high >= vocab_size else low} but "
                f"{stem} {vocabulary}"
            )


class BagOfEmbeddings(nn.Module):
    """Mean of the embeddings of the non-padding ids (0 = padding), then Linear -> LayerNorm
    -> GELU. A row of padding only gives a zero bag.

    The table starts small (normal, std ``init_std``; fastText starts near zero too), so
    that AdamW's steps, about ``lr`` per entry, move the embeddings quickly from the start.
    """

    def __init__(self, vocab_size: int, dim: int, out_features: int, init_std: float) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        weight = torch.empty(vocab_size, dim).normal_(0.0, init_std)
        weight[0] = 0.0  # padding
        self.bag = nn.EmbeddingBag(vocab_size, dim, mode="mean", padding_idx=0, _weight=weight)
        self.proj = nn.Sequential(
            nn.Linear(dim, out_features), nn.LayerNorm(out_features), nn.GELU()
        )

    #: the token vocabulary the stem reads (checked against its domains' by the core)
    vocabulary = HASHED

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        check_token_ids(
            ids,
            "embedding_bag",
            self.vocab_size,
            f"has vocab_size {self.vocab_size}; the nlp tokenizer hashes into {VOCAB_SIZE} "
            "ids: leave vocab_size at its default or set it to at least the largest id + 1",
        )
        return self.proj(self.bag(ids.long()))


class EmbeddingBagStem(Architecture):
    """Student text stem: a fastText-style mean of hashed n-gram embeddings.

    nn.EmbeddingBag (mean over the non-padding token ids) -> Linear -> LayerNorm -> GELU to
    the trunk's width.

    ``vocab_size`` defaults to the nlp tokenizer's hash buckets (2**15); an id beyond it is a
    clear error on the first batch.
    """

    name = "embedding_bag"
    modalities: ClassVar[tuple[str, ...]] = ("text",)

    class Config(ComponentConfig):
        """Vocabulary (hash buckets) and embedding width."""

        vocab_size: int = Field(
            VOCAB_SIZE, ge=2, description="Token ids 0..vocab_size-1 (0 is padding)."
        )
        dim: int = Field(64, ge=1, description="Embedding width.")
        init_std: float = Field(
            0.01, gt=0, description="Standard deviation of the initial embeddings."
        )

    def build_stem(self, input_shape: tuple[int, ...], out_features: int) -> nn.Module:
        """``[N, L]`` token ids to ``[N, out_features]``."""
        if len(input_shape) != 1:
            raise ConfigError(
                "student.stems.text: embedding_bag reads token ids [N, L], got inputs of shape "
                f"[N, {', '.join(map(str, input_shape))}]"
            )
        cfg = self.config
        return BagOfEmbeddings(cfg.vocab_size, cfg.dim, out_features, cfg.init_std)


class StaticEmbedding(nn.Module):
    """A token table, a (weighted) mean over the non-padding ids (0 = padding), then
    Linear -> LayerNorm -> GELU.

    ``pooling="mean"``: ``sum_t e[id_t] / n``; ``"weighted"``: ``sum_t w[id_t] e[id_t] /
    sum_t w[id_t]`` with ``w`` the vocabulary's SIF weights (buffer ``token_weight``). A
    row of padding only gives a zero vector. Written with a gather and sums only (no loop
    over the sequence), so an exported graph runs as fast as the eager module.

    The stem is given its vocabulary: ``tokenizer`` (its ids, its tokens, the files that
    make its ids from raw text) and ``teacher``, which gives the teacher of those tokens
    when ``student.weight_init: teacher_tokens`` asks for it.
    """

    def __init__(
        self,
        tokenizer: StudentTokenizer,
        dim: int,
        out_features: int,
        pooling: str,
        init_std: float,
        sif: float | None,
        token_dropout: float = 0.0,
        *,
        teacher: Callable[[], EmbedderTokenTeacher],
    ) -> None:
        super().__init__()
        self.token_dropout = token_dropout
        self.tokenizer = tokenizer
        self.teacher = teacher
        self.vocabulary = tokenizer.id
        self.vocab_size = tokenizer.size
        self.pooling = pooling
        self.sif = sif
        weight = torch.empty(self.vocab_size, dim).normal_(0.0, init_std)
        weight[0] = 0.0
        self.embedding = nn.Embedding(self.vocab_size, dim, padding_idx=0, _weight=weight)
        if pooling == "weighted":
            self.register_buffer("token_weight", self._sif_weights())
        self.proj = nn.Sequential(
            nn.Linear(dim, out_features), nn.LayerNorm(out_features), nn.GELU()
        )

    def _sif_weights(self) -> torch.Tensor:
        vocab = self.tokenizer.vocabulary()
        weights = torch.zeros(self.vocab_size)
        ranked = torch.tensor(vocab.embed, dtype=torch.long)
        weights[ranked] = torch.from_numpy(zipf_sif_weights(len(ranked), self.sif or SIF)).float()
        # ids never shown to a teacher ([CLS], [unused*], ...) still count, at the rarest weight
        rest = torch.ones(self.vocab_size, dtype=torch.bool)
        rest[ranked] = False
        rest[0] = False
        weights[rest] = float(weights[ranked].max()) if len(ranked) else 1.0
        return weights

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        check_token_ids(
            ids,
            "static_embedding",
            self.vocab_size,
            f"reads vocabulary {self.vocabulary!r}, which has {self.vocab_size} ids",
        )
        ids = ids.long()
        if ids.numel() and not _capturing():
            # views are right-padded to max_tokens: drop the columns that are padding in
            # every row (eager only; a captured graph takes the batch as it is given)
            used = torch.nonzero((ids != 0).any(0))
            ids = ids[:, : int(used[-1]) + 1] if len(used) else ids[:, :1]
        mask = (ids != 0).to(self.embedding.weight.dtype)
        if self.training and self.token_dropout > 0:
            keep = torch.rand(mask.shape, device=mask.device) >= self.token_dropout
            mask = mask * keep.to(mask.dtype)
        if self.pooling == "weighted":
            mask = mask * self.token_weight[ids]
        vectors = self.embedding(ids)  # [N, L, dim]
        pooled = (vectors * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp_min(1e-9)
        return self.proj(pooled)

    def check_teacher_tokens(self) -> None:
        """Refuse a vocabulary with no token text to show a teacher (hashed n-grams)."""
        self.tokenizer.vocabulary()

    def inject_teacher_tokens(self, bar: BarFactory | None = None) -> dict[str, Any]:
        """Overwrite the table with the teacher's tokens: every vocabulary entry through
        the teacher, PCA to the table's width, unit RMS, SIF-weighted (not for ``weighted``
        pooling, which weights at pooling time)
        (:func:`cdkd_core.plugin_api.token_table`)."""
        vocab = self.tokenizer.vocabulary()
        table = token_table(
            vocab,
            self.teacher(),
            self.embedding.embedding_dim,
            sif=None if self.pooling == "weighted" else self.sif,
            bar=bar,
        )
        with torch.no_grad():
            self.embedding.weight.copy_(table.weights.to(self.embedding.weight))
        return table.report()

    def inference_files(self) -> dict[str, str]:
        """The files that turn raw text into this stem's ids (for ``cdkd export``)."""
        return {k: str(v) for k, v in self.tokenizer.files().items()}


class StaticEmbeddingStem(Architecture):
    """Student text stem: a static token table over the teacher tokenizer's ids, pooled.

    Reads the ids of its domains' vocabulary (MiniLM's WordPiece for ``nlp.text``, USE's
    SentencePiece for ``nlp.multilingual``): nn.Embedding -> mean (or SIF-weighted mean)
    over the non-padding ids -> Linear -> LayerNorm -> GELU. With
    ``student.weight_init: teacher_tokens`` its table starts from the teacher's own token
    outputs, PCA-reduced to ``dim`` and frequency-weighted; otherwise from small random
    values (``init_std``).
    """

    name = "static_embedding"
    modalities: ClassVar[tuple[str, ...]] = ("text",)
    default_for: ClassVar[tuple[str, ...]] = ("text:student",)

    class Config(ComponentConfig):
        """Table width, pooling and frequency weighting."""

        dim: int = Field(64, ge=1, description="Token table width.")
        pooling: Literal["mean", "weighted"] = Field(
            "mean",
            description="mean over the non-padding tokens, or weighted: a mean weighted by "
            "each token's SIF weight a / (a + p) (p from its Zipf rank); with "
            "teacher_tokens, mean pools a table whose rows carry that weight already.",
        )
        sif: float | None = Field(
            SIF,
            gt=0,
            lt=1,
            description="SIF coefficient a of the frequency weighting; null: none "
            "(teacher_tokens then writes unweighted rows).",
        )
        init_std: float = Field(
            0.01, gt=0, description="Standard deviation of a random initial table."
        )
        token_dropout: float = Field(
            0.2,
            ge=0,
            lt=1,
            description="While training, each token is left out of the pooled mean with "
            "this probability (word dropout; none at evaluation). 0.2 was chosen on the val "
            "split of the VADER domains.",
        )

    def build_stem(self, input_shape: tuple[int, ...], out_features: int) -> nn.Module:
        """Not used: the table's size comes from the domains' vocabulary (build_stem_for)."""
        raise ConfigError(
            "static_embedding needs its domains' token vocabulary; it is built by the "
            "pipeline from the domains (build_stem_for)"
        )

    def build_stem_for(self, slot: NetworkSlot, out_features: int) -> nn.Module:
        """``[N, L]`` token ids of ``slot.vocabulary`` to ``[N, out_features]``: the stem
        is given that vocabulary's tokenizer and token teacher."""
        if len(slot.input_shape) != 1 or slot.vocabulary is None:
            raise ConfigError(
                f"student.stems.{slot.modality}: static_embedding reads token ids of a named "
                f"vocabulary (the nlp domains' student view); {slot.name} gives inputs of "
                f"shape [N, {', '.join(map(str, slot.input_shape))}] with no vocabulary"
            )
        cfg = self.config
        if cfg.pooling == "weighted" and slot.vocabulary == HASHED:
            raise ConfigError(
                "student.stems.text: static_embedding's weighted pooling needs token ranks, "
                "which hashed n-grams do not have; use pooling: mean"
            )
        return StaticEmbedding(
            student_tokenizer(slot.vocabulary),
            cfg.dim,
            out_features,
            cfg.pooling,
            cfg.init_std,
            cfg.sif,
            cfg.token_dropout,
            teacher=functools.partial(token_teacher, slot.vocabulary),
        )


ARCHITECTURES = (MiniLMStem, StaticEmbeddingStem, EmbeddingBagStem)
