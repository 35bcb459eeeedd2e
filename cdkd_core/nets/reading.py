"""Reading features from named layers with forward hooks (no edits to ``forward``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

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


@contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Eval mode for ``models`` inside the block; on exit, an exception included, every
    module of each gets back the ``training`` flag it had. Gradients stay the caller's
    choice (``torch.no_grad``)."""
    modes = [(module, module.training) for model in models for module in model.modules()]
    for model in models:
        model.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


#: what :func:`read_layer_batches` hands on per batch: its first row's index in ``x``, the
#: layer's features ``[B, F]`` and the logits ``[B, C]`` (None without a task), float on CPU
BatchSink = Callable[[int, torch.Tensor, torch.Tensor | None], None]


@torch.no_grad()
def read_layer_batches(
    model: nn.Module,
    layer: str,
    x: torch.Tensor,
    space: str,
    task: str | None,
    on_batch: BatchSink,
    *,
    device: Any = None,
    batch_size: int | None = None,
) -> None:
    """Run ``x`` through ``model`` in eval mode (restored after) and hand ``on_batch`` each
    batch's features of ``layer`` (by forward hook, flattened to ``[B, F]``) and logits.

    A pass is ``model(x, space, task)`` when ``task`` is given (its logits are handed on),
    else ``model.features(x, space)`` (logits None). ``x`` goes in batches of
    ``batch_size`` rows (all at once when None), each moved to ``device`` (None: where it
    is); one hook serves all batches. No gradient is kept.
    """
    starts = range(0, len(x), batch_size) if batch_size else range(1)
    with eval_mode(model), FeatureHook(model, layer) as hook:
        for start in starts:
            xb = x[start : start + batch_size] if batch_size else x
            if device is not None:
                xb = xb.to(device)
            logits = None if task is None else model(xb, space, task).float().cpu()
            if task is None:
                model.features(xb, space)
            on_batch(start, hook.take().float().cpu(), logits)


def read_layer(
    model: nn.Module,
    layer: str,
    x: torch.Tensor,
    space: str,
    task: str | None = None,
    *,
    device: Any = None,
    batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The features of ``layer`` (by forward hook, ``[N, F]``) and the logits (None when
    ``task`` is None) of ``model`` on ``x``, float on the CPU: :func:`read_layer_batches`
    with its batches joined. Eval mode inside, the mode restored after; no gradient."""
    features: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []

    def keep(start: int, batch: torch.Tensor, batch_logits: torch.Tensor | None) -> None:
        features.append(batch)
        if batch_logits is not None:
            logits.append(batch_logits)

    read_layer_batches(model, layer, x, space, task, keep, device=device, batch_size=batch_size)
    return torch.cat(features), (torch.cat(logits) if logits else None)
