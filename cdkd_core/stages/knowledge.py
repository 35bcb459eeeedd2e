"""Stage 2: read teacher features by forward hook, cache teacher outputs, fit the encoder.

Teacher outputs of a large or memory-mapped split are written batch by batch into
memory-mapped scratch files (:mod:`cdkd_core.data.scratch`), and so are its knowledge vectors.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import torch
from torch import nn

from cdkd_core.components import contracts
from cdkd_core.components.encoder import KnowledgeEncoder
from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.data.scratch import ScratchSpace, is_memory_mapped, row_chunks, rows_per_chunk
from cdkd_core.engine.distributed import broadcast_object, current_world
from cdkd_core.engine.inference import read_features
from cdkd_core.engine.plans import TeacherOutputs

if TYPE_CHECKING:
    from cdkd_core.stages.context import StageContext
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


def _fit_once(
    encoder: KnowledgeEncoder,
    sources: list[PreparedDomain],
    others: list[PreparedDomain],
    outputs: dict[str, TeacherOutputs],
) -> None:
    """Fit the encoder on the sources' train features, then give it the labelled rows of
    ``others`` (:meth:`~KnowledgeEncoder.add_domains`) and check its ``dim`` and state
    (:mod:`cdkd_core.components.contracts`); under torchrun, process 0 does both and the others load
    its state."""
    world = current_world()
    if world.main:
        encoder.fit(
            {d.name: outputs[d.name].features for d in sources},
            {d.name: d.train.y for d in sources},
        )
        # only for an encoder that uses them (e.g. a class graph's nodes for the targets'
        # labelled classes): the labelled rows are a copy
        if others and type(encoder).add_domains is not KnowledgeEncoder.add_domains:
            encoder.add_domains(
                {d.name: outputs[d.name].features[d.labelled] for d in others},
                {d.name: d.train.y[d.labelled] for d in others},
            )
        # a state that is not tensors + JSON fails here, naming the encoder, rather than
        # at save time after the teacher and baseline trained
        contracts.check_encoder_dim(encoder)
        contracts.check_encoder_state(encoder)
    if world.distributed:
        state = broadcast_object(encoder.state() if world.main else None)
        if not world.main:
            encoder.load_state(*state)


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
    the teacher can read; the encoder is fitted on the source domains' train features.
    Knowledge vectors of memory-mapped features are memory-mapped too; an encoder's
    ``transform`` then sees a domain's rows in chunks."""
    readable = [d for d in domains if d.trained and teacher.has_stem(d.space)]
    outputs = {
        d.name: cache.outputs(teacher, d, "train", layer, batch_size, device) for d in readable
    }
    sources = [d for d in readable if d.role == "source"]
    others = [d for d in readable if d.role != "source" and bool(d.labelled.any())]
    _fit_once(encoder, sources, others, outputs)
    for d in readable:
        outputs[d.name].knowledge = cache.knowledge(encoder, outputs[d.name].features, d.name)
    return outputs


def encode_round(
    ctx: StageContext, round_: int
) -> tuple[KnowledgeEncoder, dict[str, TeacherOutputs]]:
    """Stage 2 of round ``round_``: the configured encoder fitted on the teacher's
    features, and the teacher outputs and knowledge vectors of every trained domain it
    can read (the encoder is saved in the run directory by process 0)."""
    config = ctx.config
    encoder = ctx.host.get("encoders", config.encoder.name).from_params(config.encoder.params)
    with ctx.progress.stage(f"encoding (round {round_})", 1) as advance:
        outputs = extract_knowledge(
            ctx.teacher,
            ctx.domains,
            encoder,
            config.teacher.feature_layer,
            ctx.cache,
            config.train.eval_batch_size,
            ctx.device,
        )
        advance()
    if ctx.world.main:
        encoder.save(ctx.run_dir)
    ctx.log.log(
        stage="encoding",
        round=round_,
        encoder=encoder.name,
        dim=encoder.dim,
        domains=sorted(outputs),
    )
    return encoder, outputs
