"""Stage 2: read teacher features by forward hook, cache teacher outputs, fit the encoder."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from cdkd_core.data import PreparedDomain
from cdkd_core.encoder import KnowledgeEncoder
from cdkd_core.training import TeacherOutputs, read_features


def state_hash(model: nn.Module) -> str:
    """SHA-256 of a model's state (names, shapes, values): changes with any update."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class TeacherCache:
    """Teacher outputs computed once per teacher state, in eval mode.

    Keyed by (teacher-state hash, domain, split, layer); entries of any other teacher state
    are dropped when a new state is seen, so an updated teacher never serves stale outputs.
    Domains are standardised once at load time, so the key need not carry the transform.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str, str], TeacherOutputs] = {}
        self._state: str | None = None
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
            self._state = state
        key = (state, domain.name, split, layer)
        if key in self._entries:
            self.hits += 1
        else:
            self.misses += 1
            x = getattr(domain, split).teacher_x
            task = domain.task if teacher.has_head(domain.task) else None
            features, logits = read_features(
                teacher, layer, x, domain.space, task, batch_size, device
            )
            self._entries[key] = TeacherOutputs(logits=logits, features=features)
        cached = self._entries[key]
        return TeacherOutputs(logits=cached.logits, features=cached.features)


def extract_knowledge(
    teacher: nn.Module,
    domains: list[PreparedDomain],
    encoder: KnowledgeEncoder,
    layer: str,
    cache: TeacherCache,
    batch_size: int,
    device: torch.device,
) -> dict[str, TeacherOutputs]:
    """Teacher outputs and knowledge vectors on the train split of every trained domain
    the teacher can read; the encoder is fitted on the source domains' train features."""
    readable = [d for d in domains if d.trained and teacher.has_stem(d.space)]
    outputs = {
        d.name: cache.outputs(teacher, d, "train", layer, batch_size, device) for d in readable
    }
    sources = [d for d in readable if d.role == "source"]
    encoder.fit(
        {d.name: outputs[d.name].features for d in sources},
        {d.name: d.train.y for d in sources},
    )
    for d in readable:
        outputs[d.name].knowledge = encoder.transform(outputs[d.name].features, d.name)
    return outputs
