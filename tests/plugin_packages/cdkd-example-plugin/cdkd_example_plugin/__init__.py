"""A working plugin: one encoder (a fixed random projection) and one loss."""

from __future__ import annotations

import torch
from pydantic import Field

from cdkd_core import ComponentConfig, KnowledgeEncoder, Loss, hookimpl


class RandomProjection(KnowledgeEncoder):
    """A seeded Gaussian random projection of the teacher features (Johnson-Lindenstrauss)."""

    name = "random_projection"

    class Config(ComponentConfig):
        """Size and seed."""

        dim: int = Field(8, ge=1)
        seed: int = 0

    def fit(self, features, labels):
        """Draw the projection for the feature width."""
        width = next(iter(features.values())).shape[1]
        gen = torch.Generator().manual_seed(self.config.seed)
        self.matrix = torch.randn(width, self.config.dim, generator=gen) / self.config.dim**0.5

    @property
    def dim(self) -> int:
        return self.config.dim

    def transform(self, features, domain):
        """Project."""
        return features.float() @ self.matrix

    def state(self):
        """The matrix."""
        return {"matrix": self.matrix}, {}

    def load_state(self, tensors, meta):
        """Restore the matrix."""
        self.matrix = tensors["matrix"]


class LogitL2(Loss):
    """Mean squared difference between student and teacher logits (Ba & Caruana 2014)."""

    name = "logit_l2"
    requires = frozenset({"teacher_logits"})

    def forward(self, ctx):
        """MSE of logits."""
        if ctx.teacher_logits is None:
            return None
        return ((ctx.student_logits - ctx.teacher_logits) ** 2).mean()


@hookimpl
def register_encoders(register):
    register(RandomProjection)


@hookimpl
def register_losses(register):
    register(LogitL2)
