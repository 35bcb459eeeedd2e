"""Reading features from named layers with forward hooks (no edits to ``forward``)."""

from __future__ import annotations

from types import TracebackType

import torch
from torch import nn

from cdkd_core.errors import ConfigError


def find_module(model: nn.Module, path: str) -> nn.Module:
    """The submodule at dotted ``path`` (``""`` is the model); a clear error listing the
    top-level names when it does not exist."""
    modules = dict(model.named_modules())
    if path in modules:
        return modules[path]
    top = sorted(name for name, _ in model.named_children())
    raise ConfigError(f"feature_layer {path!r} is not a module of the network; top level: {top}")


class FeatureHook:
    """Context manager keeping the latest output of one module, flattened to ``[N, F]``."""

    def __init__(self, model: nn.Module, path: str) -> None:
        self.module = find_module(model, path)
        self.output: torch.Tensor | None = None
        self._handle = None

    def _store(self, module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        self.output = output.flatten(1) if output.dim() > 2 else output

    def __enter__(self) -> FeatureHook:
        self._handle = self.module.register_forward_hook(self._store)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def take(self) -> torch.Tensor:
        """The stored output (raises if the module did not run)."""
        if self.output is None:
            raise RuntimeError("the hooked layer did not run in the last forward pass")
        out, self.output = self.output, None
        return out
