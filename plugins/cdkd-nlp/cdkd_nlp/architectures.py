"""Text stems: ``minilm`` for the teacher (over cached sentence embeddings) and
``embedding_bag`` for the student (over hashed token ids)."""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import nn

from cdkd_core.architecture import Architecture
from cdkd_core.component import ComponentConfig
from cdkd_core.errors import ConfigError
from cdkd_nlp.tokenize import VOCAB_SIZE


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

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.is_floating_point() or ids.dim() != 2:
            raise ConfigError(
                "embedding_bag reads integer token ids [N, L] (the nlp domains' student view); "
                f"got {ids.dtype} inputs of shape {list(ids.shape)}"
            )
        # the id range check reads the data, which a captured graph (torch.jit.trace,
        # torch.export, ONNX: `cdkd export`) cannot hold: it runs eagerly only
        if ids.numel() and not _capturing():
            low, high = int(ids.min()), int(ids.max())
            if low < 0 or high >= self.vocab_size:
                raise ConfigError(
                    f"student.stems.text: a token id is {high if high >= self.vocab_size else low}"
                    f" but embedding_bag has vocab_size {self.vocab_size}; the nlp tokenizer "
                    f"hashes into {VOCAB_SIZE} ids: leave vocab_size at its default or set it "
                    "to at least the largest id + 1"
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
    default_for: ClassVar[tuple[str, ...]] = ("text:student",)

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


ARCHITECTURES = (MiniLMStem, EmbeddingBagStem)
