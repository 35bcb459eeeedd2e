"""A classical teacher (``teacher.model``): fitted scikit-learn classifiers behind the
interface every stage reads a teacher through (``forward(x, space, task)``,
``features(x, space)``, ``has_stem``, ``has_head``, a feature layer named ``trunk``).

One estimator per (input space, task) of the source domains, pooled over the domains that
share both. Its "logits" are the log of its class probabilities, so their softmax is the
estimator's ``predict_proba``. Its feature layer gives the architecture's representation of
each estimator in a block of columns of its own (zeros elsewhere), so estimators that share
no coordinates are never mixed up by an encoder fitted over all domains.

The fitted estimators live in the module's state as byte buffers in skops' secure format
(``estimator~<space>|<task>``): checkpoints, ``teacher.safetensors``, resume and the
teacher cache's state hash all work as for a network. Loading refuses a file holding any
type skops does not trust by default beyond the architecture's ``trusted_types``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from cdkd_core.components.architecture import EstimatorArchitecture
from cdkd_core.errors import DataError
from cdkd_core.nets.network import module_key

#: floor of a probability before its log (a tree ensemble may predict exactly 0)
MIN_PROB = 1e-7


def log_probabilities(probs: np.ndarray) -> np.ndarray:
    """``log(probs)``, each probability floored at :data:`MIN_PROB` first (dtype kept)."""
    return np.log(np.clip(probs, MIN_PROB, 1.0))


def as_rows(x: torch.Tensor) -> np.ndarray:
    """``x`` as a float32 ``[N, F]`` array on the CPU (trailing dimensions flattened): what an
    estimator reads."""
    return x.detach().reshape(len(x), -1).float().cpu().numpy()


@dataclass(frozen=True)
class EstimatorSlot:
    """One estimator's place: the input space it reads and the task it predicts."""

    space: str
    task: str
    num_classes: int

    @property
    def key(self) -> str:
        """Its state key (``estimator~<space>|<task>``, dots made safe)."""
        return f"estimator~{module_key(self.space)}|{module_key(self.task)}"


class Representation(nn.Module):
    """The classical teacher's feature layer: passes its input through, so a forward hook
    on ``trunk`` reads the representation; ``out_features`` is its width once fitted."""

    def __init__(self) -> None:
        super().__init__()
        self.out_features = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def load_estimator(data: bytes, arch: EstimatorArchitecture, where: str) -> Any:
    """An estimator from skops bytes, refusing untrusted types."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # a torn or foreign file
        raise DataError(f"{where}: not a skops file ({type(exc).__name__}: {exc})") from exc
    refused = sorted(set(untrusted) - set(arch.trusted_types))
    if refused:
        raise DataError(
            f"{where}: the saved estimator holds types {arch.name!r} does not trust: "
            f"{refused}; refusing to load it"
        )
    return sio.loads(data, trusted=list(untrusted))


class EstimatorTeacher(nn.Module):
    """Fitted classifiers of one :class:`EstimatorArchitecture`, seen as a teacher."""

    #: its state's byte buffers change size with the fit: ``teacher.checkpoint`` does not
    #: compare their shapes with an unfitted teacher's
    variable_size_state = True
    #: why PyTorch's ONNX exporter cannot capture it (latency: it is timed as it is served,
    #: through its estimators' own ``predict_proba``)
    not_exportable = (
        "a fitted scikit-learn model runs outside PyTorch, so PyTorch's ONNX exporter cannot "
        "capture it; it is timed through its own predict_proba"
    )

    def __init__(self, arch: EstimatorArchitecture, slots: list[EstimatorSlot]) -> None:
        super().__init__()
        self.arch = arch
        self.slots = {(s.space, s.task): s for s in slots}
        self.trunk = Representation()
        self._estimators: dict[str, Any] = {}
        self._widths: dict[str, int] = {}
        for slot in self.slots.values():
            self.register_buffer(slot.key, torch.zeros(0, dtype=torch.uint8))

    # -- what the stages ask of a teacher ------------------------------------------------------
    def has_stem(self, space: str) -> bool:
        """Whether an estimator reads inputs of ``space``."""
        return any(s == space for s, _ in self.slots)

    def has_head(self, task: str) -> bool:
        """Whether an estimator predicts ``task``."""
        return any(t == task for _, t in self.slots)

    @property
    def fitted(self) -> bool:
        """Whether every estimator is fitted (or loaded)."""
        return len(self._estimators) == len(self.slots)

    def _estimator(self, space: str, task: str | None) -> tuple[EstimatorSlot, Any]:
        for (s, t), slot in self.slots.items():
            if s == space and (task is None or t == task):
                if slot.key not in self._estimators:
                    raise RuntimeError(f"the {self.arch.name} teacher is not fitted yet")
                return slot, self._estimators[slot.key]
        raise KeyError(f"no estimator reads {space!r}" + (f" for {task!r}" if task else ""))

    def features(self, x: torch.Tensor, space: str) -> torch.Tensor:
        """The representation of ``x`` in its estimator's block of columns ``[N, width]``."""
        slot, estimator = self._estimator(space, None)
        block = self.arch.representation(estimator, as_rows(x))
        out = np.zeros((len(block), self.trunk.out_features), dtype=np.float32)
        start = self._offset(slot)
        out[:, start : start + block.shape[1]] = block
        return self.trunk(torch.from_numpy(out).to(x.device))

    def forward(self, x: torch.Tensor, space: str, task: str) -> torch.Tensor:
        """``log(predict_proba(x))`` ``[N, classes]``; the representation too when a hook
        reads the feature layer (only then: a prediction alone needs no representation)."""
        _, estimator = self._estimator(space, task)
        if self.trunk._forward_hooks:
            self.features(x, space)
        probs = estimator.predict_proba(as_rows(x))
        return torch.from_numpy(log_probabilities(probs).astype(np.float32)).to(x.device)

    def _offset(self, slot: EstimatorSlot) -> int:
        offset = 0
        for key in sorted(self._widths):
            if key == slot.key:
                return offset
            offset += self._widths[key]
        raise KeyError(slot.key)

    # -- fitting and state ---------------------------------------------------------------------
    def set_estimator(self, slot: EstimatorSlot, estimator: Any, data: bytes | None = None) -> None:
        """Keep a fitted ``estimator`` for ``slot`` (``data``: its skops bytes, made here
        when None) and size the feature layer."""
        if data is None:
            import skops.io as sio

            data = sio.dumps(estimator)
        self._buffers[slot.key] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        self._estimators[slot.key] = estimator
        probe = np.zeros((1, estimator.n_features_in_), dtype=np.float32)
        self._widths[slot.key] = self.arch.representation(estimator, probe).shape[1]
        self.trunk.out_features = sum(self._widths.values())

    def estimator_bytes(self) -> dict[str, bytes]:
        """Each fitted estimator's skops bytes, by state key."""
        return {k: bytes(self._buffers[k].cpu().numpy().tobytes()) for k in self._estimators}

    def parameter_count(self) -> int:
        """The values its estimators store (the architecture's count)."""
        return sum(self.arch.parameter_count(e) for e in self._estimators.values())

    def size_bytes(self) -> int:
        """The fitted estimators' size as saved."""
        return sum(int(self._buffers[k].numel()) for k in self._estimators)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict,
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        by_key = {slot.key: slot for slot in self.slots.values()}
        for key, slot in by_key.items():
            name = prefix + key
            if name not in state_dict:
                missing_keys.append(name)
                continue
            data = bytes(state_dict[name].detach().cpu().to(torch.uint8).numpy().tobytes())
            if not data:
                continue  # saved before it was fitted
            estimator = load_estimator(data, self.arch, f"teacher state {name}")
            self.set_estimator(slot, estimator, data)
        for name in state_dict:
            if name.startswith(prefix) and name[len(prefix) :] not in by_key:
                unexpected_keys.append(name)
