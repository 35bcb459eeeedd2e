"""Assembling a teacher or student from the config: stems per input space, trunk, heads."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from cdkd_core.components.slot import NetworkSlot
from cdkd_core.config.models import ComponentRef, ModelSpec, TeacherSpec
from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.errors import ConfigError, DataError
from cdkd_core.nets.ensemble import TeacherEnsemble
from cdkd_core.nets.estimator_teacher import EstimatorSlot, EstimatorTeacher
from cdkd_core.nets.linear_teacher import LinearSlot, LinearTeacher
from cdkd_core.nets.network import MultiDomainNet
from cdkd_core.nets.reading import eval_mode
from cdkd_core.nets.selected_teacher import SelectedTeacher
from cdkd_core.seeds import member_seed

if TYPE_CHECKING:
    from cdkd_core.host.plugin_host import PluginHost


def stem_architecture(spec: ModelSpec, modality: str, host: PluginHost, view: str):
    """The stem component for ``modality`` in the teacher or student (``view``): the
    config's choice, else the architecture whose ``default_for`` lists ``"<modality>:<view>"``,
    else one listing ``"<modality>"``."""
    ref = spec.stems.get(modality)
    if ref is not None:
        return host.get("architectures", ref.name).from_params(ref.params)
    infos = list(host.components("architectures").values())
    for key in (f"{modality}:{view}", modality):
        for info in infos:
            if key in info.cls.default_for:
                return info.cls()
    raise ConfigError(
        f"{view}.stems: no default stem for modality {modality!r}; "
        f"set {view}.stems.{modality}: {{name: ...}}"
    )


def network_slot(domain: PreparedDomain, view: Literal["teacher", "student"]) -> NetworkSlot:
    """The slot of a prepared domain on the teacher or student side.

    Args:
        domain: A domain as the core prepared it (its splits standardised).
        view: ``"teacher"`` or ``"student"``: whose view's shape and dtype.

    Returns:
        The slot.
    """
    x = domain.train.teacher_x if view == "teacher" else domain.train.student_x
    return NetworkSlot(
        name=domain.name,
        space=domain.space,
        modality=domain.modality,
        task=domain.task,
        num_classes=domain.num_classes,
        input_shape=tuple(int(n) for n in x.shape[1:]),
        input_dtype=str(x.dtype).removeprefix("torch."),
        vocabulary=domain.data.student_vocabulary if view == "student" else None,
    )


def _check_vocabulary(stem: nn.Module, arch: str, slot: NetworkSlot, view: str) -> None:
    """A stem that declares the vocabulary it reads must read its domains' one."""
    declared = getattr(stem, "vocabulary", None)
    if declared is not None and slot.vocabulary is not None and declared != slot.vocabulary:
        raise DataError(
            f"{view}.stems.{slot.modality}: {arch} reads token ids of vocabulary "
            f"{declared!r}, but {slot.name}'s {view} view uses {slot.vocabulary!r}; give the "
            "stem and the domains one vocabulary (the domains' params or the stem's)"
        )


def build_network(
    spec: ModelSpec,
    domains: Sequence[PreparedDomain | NetworkSlot],
    host: PluginHost,
    view: Literal["teacher", "student"],
    seed: int,
) -> MultiDomainNet:
    """A network with a stem for each domain's input space and a head for each task.

    Built under ``torch.manual_seed(seed)`` so two builds with one seed are identical.
    """
    slots = [d if isinstance(d, NetworkSlot) else network_slot(d, view) for d in domains]
    torch.manual_seed(seed)
    trunk = host.get("architectures", spec.trunk.name).from_params(spec.trunk.params)
    trunk_module = trunk.build_trunk()
    head_arch = (
        host.get("architectures", spec.head.name).from_params(spec.head.params)
        if spec.head is not None
        else None
    )
    stems, heads, shapes, classes, vocabularies = {}, {}, {}, {}, {}
    for domain in slots:
        shape = domain.input_shape
        if domain.space in shapes:
            if shapes[domain.space] != shape:
                raise DataError(
                    f"domains sharing input space {domain.space!r} differ in {view} input "
                    f"shape: {list(shapes[domain.space])} vs {list(shape)} ({domain.name})"
                )
            if vocabularies[domain.space] != domain.vocabulary:
                raise DataError(
                    f"domains sharing input space {domain.space!r} differ in their {view} "
                    f"token vocabulary: {vocabularies[domain.space]!r} vs "
                    f"{domain.vocabulary!r} ({domain.name})"
                )
        else:
            shapes[domain.space] = shape
            vocabularies[domain.space] = domain.vocabulary
            arch = stem_architecture(spec, domain.modality, host, view)
            stems[domain.space] = arch.build_stem_for(domain, trunk_module.in_features)
            _check_vocabulary(stems[domain.space], arch.name, domain, view)
        if domain.task not in heads:
            heads[domain.task] = (
                head_arch.build_head(trunk_module.out_features, domain.num_classes)
                if head_arch is not None
                else nn.Linear(trunk_module.out_features, domain.num_classes)
            )
            classes[domain.task] = domain.num_classes
        elif classes[domain.task] != domain.num_classes:
            raise DataError(
                f"domains sharing task {domain.task!r} differ in their number of classes"
            )
    return MultiDomainNet(stems, trunk_module, heads)


def build_teacher(
    spec: TeacherSpec,
    domains: Sequence[PreparedDomain | NetworkSlot],
    host: PluginHost,
    seed: int,
    without: frozenset[str] = frozenset(),
) -> MultiDomainNet | TeacherEnsemble | EstimatorTeacher | SelectedTeacher:
    """The teacher ``spec`` describes: one network, with ``teacher.ensemble`` K networks of
    its architecture (member k built from :func:`~cdkd_core.seeds.member_seed`),
    with ``teacher.model`` a classical teacher, unfitted (one estimator per input space and
    task of ``domains``), or with ``teacher.auto`` the candidates (:func:`auto_teacher`;
    ``without``: candidates the rest of the config rules out)."""
    if spec.model is not None:
        return estimator_teacher(spec, domains, host)
    if spec.auto is not None:
        return auto_teacher(spec, domains, host, seed, without)
    if spec.ensemble is None:
        return build_network(spec, domains, host, "teacher", seed)
    members = [
        build_network(spec, domains, host, "teacher", member_seed(seed, k))
        for k in range(spec.ensemble.members)
    ]
    return TeacherEnsemble(members, spec.ensemble.features)


def table_tasks(slots: Sequence[NetworkSlot]) -> list[str]:
    """The tasks all of whose domains are tables with a numeric teacher view: where
    ``teacher: auto`` chooses among its candidates."""
    tasks: dict[str, bool] = {}
    for s in slots:
        numeric = not s.input_dtype.startswith(("int", "uint", "bool"))
        tasks[s.task] = tasks.get(s.task, True) and s.modality == "tabular" and numeric
    return [t for t, table in tasks.items() if table]


def auto_teacher(
    spec: TeacherSpec,
    domains: Sequence[PreparedDomain | NetworkSlot],
    host: PluginHost,
    seed: int,
    without: frozenset[str] = frozenset(),
) -> MultiDomainNet | SelectedTeacher:
    """``teacher: auto``'s candidates, unfitted: where no task is a table, the network
    alone (as a config naming it); else a :class:`SelectedTeacher` whose table tasks
    choose among ``teacher.auto.candidates`` (less ``without``) and whose other tasks get
    the network. Member k of the networks is built from
    :func:`~cdkd_core.seeds.member_seed`, so member 0 is the single network."""
    assert spec.auto is not None
    slots = [d if isinstance(d, NetworkSlot) else network_slot(d, "teacher") for d in domains]
    tables = table_tasks(slots)
    if not tables:
        return build_network(spec, domains, host, "teacher", seed)
    offered = [c for c in spec.auto.candidates if c not in without] or ["network"]
    candidates = {s.task: (offered if s.task in tables else ["network"]) for s in slots}
    wanted = {c for cands in candidates.values() for c in cands}
    members = spec.auto.ensemble_members if "ensemble" in wanted else int("network" in wanted)
    networks = [
        build_network(spec, domains, host, "teacher", member_seed(seed, k)) for k in range(members)
    ]
    table_slots = [s for s in slots if s.task in tables]
    linear = None
    if "linear" in wanted:
        pairs = {(s.space, s.task): s for s in table_slots}
        linear = LinearTeacher(
            [
                LinearSlot(s.space, s.task, int(math.prod(s.input_shape)), s.num_classes)
                for s in pairs.values()
            ]
        )
    trees = None
    if "hist_gbm" in wanted:
        trees = estimator_teacher(
            spec.model_copy(update={"auto": None, "model": ComponentRef(name="hist_gbm")}),
            table_slots,
            host,
        )
    return SelectedTeacher(networks, linear, trees, candidates)


def estimator_teacher(
    spec: TeacherSpec, domains: Sequence[PreparedDomain | NetworkSlot], host: PluginHost
) -> EstimatorTeacher:
    """``teacher.model``'s classical teacher, unfitted, with one estimator slot per (input
    space, task) of ``domains``."""
    from cdkd_core.components.architecture import EstimatorArchitecture

    assert spec.model is not None
    arch = host.get("architectures", spec.model.name).from_params(spec.model.params)
    if not isinstance(arch, EstimatorArchitecture):
        raise ConfigError(
            f"teacher.model.name: architecture {spec.model.name!r} is no whole teacher"
        )
    slots: dict[tuple[str, str], EstimatorSlot] = {}
    for d in domains:
        slot = d if isinstance(d, NetworkSlot) else network_slot(d, "teacher")
        if slot.input_dtype.startswith(("int", "uint", "bool")):
            raise DataError(
                f"teacher.model: {arch.name} reads numbers, and {slot.name}'s teacher view is "
                f"{slot.input_dtype} (token ids or codes); give it a numeric view"
            )
        slots.setdefault(
            (slot.space, slot.task), EstimatorSlot(slot.space, slot.task, slot.num_classes)
        )
    return EstimatorTeacher(arch, list(slots.values()))


def teacher_networks(teacher: nn.Module) -> list[MultiDomainNet]:
    """The networks a teacher trains one by one: an ensemble's members, else itself (none
    for a classical teacher)."""
    if isinstance(teacher, EstimatorTeacher):
        return []
    if isinstance(teacher, SelectedTeacher):
        return list(teacher.members)  # type: ignore[arg-type]
    if isinstance(teacher, TeacherEnsemble):
        return list(teacher.members)  # type: ignore[arg-type]
    assert isinstance(teacher, MultiDomainNet)
    return [teacher]


@torch.no_grad()
def probe_network(
    spec: ModelSpec,
    net: MultiDomainNet,
    domains: Sequence[PreparedDomain],
    host: PluginHost,
    view: Literal["teacher", "student"],
) -> None:
    """Check the contract of every part of ``net`` on two examples of each input space,
    before anything trains: each stem returns ``[N, trunk.in_features]``, the trunk
    ``[N, trunk.out_features]``, each head ``[N, classes]``; a part that does not raises
    :class:`~cdkd_core.components.contracts.ContractError` naming its architecture. Runs in
    eval mode and leaves the random number generator where it was."""
    from cdkd_core.components import contracts
    from cdkd_core.nets.network import module_key

    trunk_arch = host.get("architectures", spec.trunk.name)
    head_arch = host.get("architectures", spec.head.name) if spec.head is not None else None
    in_width, out_width = contracts.check_trunk(trunk_arch, net.trunk)
    features: dict[str, torch.Tensor] = {}
    tasks: set[str] = set()
    with eval_mode(net), torch.random.fork_rng(devices=[]):
        for d in domains:
            if not net.has_stem(d.space):
                continue
            if d.space not in features:
                x = (d.train.teacher_x if view == "teacher" else d.train.student_x)[:2]
                stem_arch = type(stem_architecture(spec, d.modality, host, view))
                h = net.stems[module_key(d.space)](x)
                contracts.check_stem_output(stem_arch, h, len(x), in_width)
                f = net.trunk(h)
                contracts.check_trunk_output(trunk_arch, f, len(x), out_width)
                features[d.space] = f
            if head_arch is not None and d.task not in tasks and net.has_head(d.task):
                tasks.add(d.task)
                f = features[d.space]
                logits = net.heads[module_key(d.task)](f)
                contracts.check_head_output(head_arch, logits, len(f), d.num_classes)
