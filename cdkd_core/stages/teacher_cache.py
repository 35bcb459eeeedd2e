"""Teacher outputs computed once per teacher state (:class:`TeacherCache`): features by
forward hook and logits of a domain's split, in RAM or, for a large or memory-mapped split,
in memory-mapped scratch files (:mod:`cdkd_core.data.scratch`), with the knowledge vectors
an encoder gives of them."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from cdkd_core.components import contracts
from cdkd_core.components.encoder import KnowledgeEncoder
from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.data.scratch import ScratchSpace, is_memory_mapped, row_chunks, rows_per_chunk
from cdkd_core.engine.inference import read_features
from cdkd_core.engine.plans import TeacherOutputs
from cdkd_core.nets.reading import read_layer, read_layer_batches


def state_hash(model: nn.Module) -> str:
    """SHA-256 of a model's state (names, shapes, values): changes with any update."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _feature_width(
    model: nn.Module, layer: str, x: torch.Tensor, space: str, task: str | None, device
) -> int:
    """Width of ``layer``'s flattened output, from one example in eval mode."""
    features, _ = read_layer(model, layer, x[:1], space, task, device=device)
    return features.shape[1]


@torch.no_grad()
def write_features(
    model: nn.Module,
    layer: str,
    x: torch.Tensor,
    space: str,
    task: str | None,
    batch_size: int,
    device,
    scratch: ScratchSpace,
    key: str,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What :func:`~cdkd_core.engine.inference.read_features` gives (features of ``layer`` by
    forward hook, logits unless ``task`` is None), each batch written into memory-mapped
    scratch files ``<key>-features`` and ``<key>-logits`` as it comes, never all in RAM."""
    features: torch.Tensor | None = None
    logits: torch.Tensor | None = None

    def store(start: int, batch: torch.Tensor, batch_logits: torch.Tensor | None) -> None:
        nonlocal features, logits
        if features is None:
            features = scratch.empty(f"{key}-features", (len(x), batch.shape[1]), batch.dtype)
            if batch_logits is not None:
                shape = (len(x), batch_logits.shape[1])
                logits = scratch.empty(f"{key}-logits", shape, batch_logits.dtype)
        features[start : start + len(batch)] = batch
        if logits is not None and batch_logits is not None:
            logits[start : start + len(batch)] = batch_logits

    read_layer_batches(model, layer, x, space, task, store, device=device, batch_size=batch_size)
    assert features is not None, "a split is never empty"
    return features, logits


class TeacherCache:
    """Teacher outputs computed once per teacher state, in eval mode.

    Keyed by (teacher-state hash, domain, split, layer); entries of any other teacher state
    are dropped when a new state is seen, so an updated teacher never serves stale outputs.
    Domains are standardised once at load time, so the key need not carry the transform.
    Outputs that ``scratch`` sends to disk (large, or of memory-mapped inputs) are
    memory-mapped files there; their files are deleted with their entries.
    """

    def __init__(self, scratch: ScratchSpace | None = None) -> None:
        self._entries: dict[tuple[str, str, str, str], TeacherOutputs] = {}
        self._files: list[str] = []
        self._state: str | None = None
        self.scratch = scratch if scratch is not None else ScratchSpace()
        self.hits = 0
        self.misses = 0

    def outputs(
        self,
        teacher: nn.Module,
        domain: PreparedDomain,
        split: str,
        layer: str,
        batch_size: int,
        device: torch.device,
    ) -> TeacherOutputs:
        """Features (and logits where the teacher has a head) of ``domain``'s ``split``."""
        state = state_hash(teacher)
        if state != self._state:
            self._entries.clear()
            for name in self._files:
                self.scratch.release(name)
            self._files.clear()
            self._state = state
        key = (state, domain.name, split, layer)
        if key in self._entries:
            self.hits += 1
        else:
            self.misses += 1
            x = getattr(domain, split).teacher_x
            task = domain.task if teacher.has_head(domain.task) else None
            mapped, nbytes = is_memory_mapped(x), 0
            if self.scratch.mode == "auto" and not mapped:  # the size decides
                nbytes = len(x) * _feature_width(teacher, layer, x, domain.space, task, device) * 4
            if self.scratch.on_disk(nbytes, mapped=mapped):
                name = f"teacher-{domain.name}-{split}-{layer}"
                self._files += [f"{name}-features", f"{name}-logits"]
                features, logits = write_features(
                    teacher, layer, x, domain.space, task, batch_size, device, self.scratch, name
                )
            else:
                features, logits = read_features(
                    teacher, layer, x, domain.space, task, batch_size, device
                )
            self._entries[key] = TeacherOutputs(logits=logits, features=features)
        cached = self._entries[key]
        return TeacherOutputs(logits=cached.logits, features=cached.features)

    def knowledge(
        self, encoder: KnowledgeEncoder, features: torch.Tensor, domain: str
    ) -> torch.Tensor:
        """``encoder.transform(features, domain)``; for memory-mapped features, chunk by
        chunk into a memory-mapped scratch file (``knowledge-<domain>``, replaced each
        round)."""
        if not is_memory_mapped(features):
            vectors = encoder.transform(features, domain)
            contracts.check_encoder_output(encoder, features, vectors, domain)
            return vectors
        out = None
        for chunk in row_chunks(len(features), rows_per_chunk(features)):
            part = features[chunk]
            vectors = encoder.transform(part, domain)
            contracts.check_encoder_output(encoder, part, vectors, domain)
            if out is None:
                shape = (len(features), vectors.shape[1])
                out = self.scratch.empty(f"knowledge-{domain}", shape, vectors.dtype)
            out[chunk] = vectors
        assert out is not None, "a split is never empty"
        return out
