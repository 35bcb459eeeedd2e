"""Stage 2: the teacher's features of every domain (through :class:`TeacherCache`, which
keeps them once per teacher state), the encoder fitted on the sources', and each domain's
knowledge vectors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from cdkd_core.components import contracts
from cdkd_core.components.encoder import KnowledgeEncoder
from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.engine.distributed import broadcast_object, current_world
from cdkd_core.engine.plans import TeacherOutputs
from cdkd_core.stages.teacher_cache import TeacherCache

if TYPE_CHECKING:
    from cdkd_core.stages.context import StageContext


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
