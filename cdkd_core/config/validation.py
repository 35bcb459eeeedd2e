"""Checks a parsed config against the registered components before anything trains."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from cdkd_core.config.machine import machine_problems
from cdkd_core.config.models import ComponentRef, PipelineConfig
from cdkd_core.errors import ConfigError

if TYPE_CHECKING:
    from cdkd_core.host.plugin_host import PluginHost


def _check_params(kind: str, cls: type, ref: ComponentRef, where: str) -> Any:
    try:
        return cls.Config.model_validate(ref.params)
    except ValidationError as exc:
        from cdkd_core.components.kinds import kind_label

        lines = [f"invalid params for {kind_label(kind)} {ref.name!r}:"]
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            valid = ", ".join(sorted(cls.Config.model_fields))
            if err["type"] == "extra_forbidden":
                msg += f" (valid: {valid or 'none'})"
            path = f"{where}.params" + (f".{loc}" if loc else "")
            lines.append(f"  {path}: {msg.removeprefix('Value error, ')}")
        raise ConfigError("\n".join(lines)) from None


def validate_components(config: PipelineConfig, host: PluginHost, *, machine: bool = True) -> None:
    """Resolve every component name in ``host`` and validate its params; check
    loss/encoder pairing, and (``machine``) that this machine has the CPU threads and the
    device ``train`` asks for."""
    errors: list[str] = []

    def check(kind: str, ref: ComponentRef, where: str) -> type | None:
        try:
            cls = host.get(kind, ref.name, where=f"{where}.name")
            _check_params(kind, cls, ref, where)
            return cls
        except ConfigError as exc:
            errors.append(str(exc))
            return None

    for i, entry in enumerate(config.domains):
        check("domains", ComponentRef(name=entry.name, params=entry.params), f"domains.{i}")
    for slot in ("teacher", "student"):
        errors += _network_problems(getattr(config, slot), slot, check)
    encoder = check("encoders", config.encoder, "encoder")
    provides = set(encoder.provides) if encoder is not None else set()
    for i, ref in enumerate(config.losses):
        loss = check("losses", ref, f"losses.{i}")
        if loss is None or encoder is None or config.teacher.model is not None:
            continue  # a classical teacher's losses: estimator_teacher_problems
        missing = sorted((set(loss.requires) & {"vectors", "graph"}) - provides)
        if missing:
            errors.append(
                f"losses.{i}: loss {ref.name!r} needs {missing} from the encoder, but encoder "
                f"{config.encoder.name!r} provides only {sorted(provides)}"
            )
    feedback = check("feedback", config.feedback, "feedback")
    if config.teacher.model is not None:
        model = check("architectures", config.teacher.model, "teacher.model")
        if model is not None:
            errors += estimator_teacher_problems(config, model, encoder, feedback, host)
    checkpoint = config.teacher.checkpoint
    if checkpoint is not None and not Path(checkpoint).is_file():
        errors.append(f"teacher.checkpoint: no such file: {checkpoint}")
    if machine:  # more threads, or a device, than this machine has
        errors += machine_problems(config.train)
    if errors:
        raise ConfigError("\n".join(errors))


def estimator_teacher_problems(
    config: PipelineConfig,
    model: type,
    encoder: type | None,
    feedback: type | None,
    host: PluginHost,
) -> list[str]:
    """What a classical teacher (``teacher.model``) cannot do in ``config``, one line each:
    an architecture that is no whole teacher, an encoder it refuses, a loss needing what it
    cannot give, a feedback strategy that would update it."""
    from cdkd_core.components.architecture import EstimatorArchitecture

    name = config.teacher.model.name if config.teacher.model is not None else "?"
    if not issubclass(model, EstimatorArchitecture):
        return [
            f"teacher.model.name: architecture {name!r} is no whole teacher (a classical "
            "model such as hist_gbm); a network teacher is written with trunk and stems"
        ]
    problems = []
    for i, ref in enumerate(config.losses):
        try:
            loss = host.get("losses", ref.name)
        except ConfigError:
            continue  # reported above
        missing = sorted(set(loss.requires) - model.provides)
        if missing:
            problems.append(
                f"losses.{i}: loss {ref.name!r} needs {missing}, which the {name} teacher "
                f"cannot give (it gives {sorted(model.provides)}); with teacher.model use "
                "ce, kd, hint or relational, and encoder pca or linear"
            )
    refused = encoder is not None and encoder.name in model.refused_encoders
    if refused and not problems:  # a refused loss says which encoder to use already
        assert encoder is not None
        problems.append(
            f"encoder: {encoder.name!r} does not work with the {name} teacher: "
            f"{model.refused_encoders[encoder.name]}; use pca or linear"
        )
    if feedback is not None and feedback.updates_teacher:
        problems.append(
            f"feedback: {config.feedback.name!r} updates the teacher by gradient, and the "
            f"{name} teacher is a fitted model with none; use feedback: {{name: none}}"
        )
    return problems


def auto_exclusions(config: PipelineConfig, host: PluginHost) -> frozenset[str]:
    """The candidates of ``teacher: auto`` the rest of ``config`` rules out: ``hist_gbm``
    where a loss, the encoder or the feedback strategy needs what a fitted classical model
    cannot give (:func:`estimator_teacher_problems`)."""
    auto = config.teacher.auto
    if auto is None or "hist_gbm" not in auto.candidates:
        return frozenset()
    trees = ComponentRef(name="hist_gbm")
    as_trees = config.model_copy(
        update={"teacher": config.teacher.model_copy(update={"auto": None, "model": trees})}
    )
    problems = estimator_teacher_problems(
        as_trees,
        host.get("architectures", "hist_gbm"),
        host.get("encoders", config.encoder.name),
        host.get("feedback", config.feedback.name),
        host,
    )
    return frozenset({"hist_gbm"}) if problems else frozenset()


def _network_problems(spec: Any, slot: str, check: Any) -> list[str]:
    """What is wrong with a network slot's trunk, head and stems (``check`` records an
    unknown component or bad params itself)."""
    if spec.trunk is None:
        return []  # a whole teacher (teacher.model): estimator_teacher_problems
    problems = []
    trunk = check("architectures", spec.trunk, f"{slot}.trunk")
    if trunk is not None and not trunk.provides_trunk:
        problems.append(f"{slot}.trunk.name: architecture {spec.trunk.name!r} is not a trunk")
    if spec.head is not None:
        check("architectures", spec.head, f"{slot}.head")
    for modality, ref in spec.stems.items():
        stem = check("architectures", ref, f"{slot}.stems.{modality}")
        if stem is not None and modality not in stem.modalities:
            problems.append(
                f"{slot}.stems.{modality}.name: architecture {ref.name!r} is no stem for "
                f"modality {modality!r} (it serves: {list(stem.modalities) or 'none'})"
            )
    return problems
