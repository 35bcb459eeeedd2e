"""A plugin that registers a name the core already has, and a loss of its own."""

from cdkd_core import Loss, hookimpl
from cdkd_core.builtins.encoders import PCAEncoder


class AnotherPCA(PCAEncoder):
    """A second encoder called pca."""

    name = "pca"


class Zero(Loss):
    """A loss that is always zero."""

    name = "zero"

    def forward(self, ctx):
        """Zero."""
        return ctx.student_logits.sum() * 0.0


@hookimpl
def register_encoders(register):
    register(AnotherPCA)


@hookimpl
def register_losses(register):
    register(Zero)
