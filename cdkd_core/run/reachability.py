"""Checks of the domains' roles before anything trains: a domain nothing can learn or
evaluate is refused, a target no teacher stem reads is warned about."""

from __future__ import annotations

from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.errors import ConfigError


def check_reachability(domains: list[PreparedDomain]) -> None:
    """Refuse configs whose domains cannot be learned or evaluated."""
    sources = [d for d in domains if d.role == "source"]
    trained = [d for d in domains if d.trained]
    teacher_spaces = {d.space for d in sources}
    teacher_tasks = {d.task for d in sources}
    for d in domains:
        if d.role == "unseen":
            if d.space not in {t.space for t in trained} or d.task not in {t.task for t in trained}:
                raise ConfigError(
                    f"domains: unseen domain {d.name!r} shares no input space ({d.space!r}) "
                    f"and task ({d.task!r}) with a trained domain, so it cannot be evaluated "
                    "zero-shot; give it a shared input_space/task or make it a target"
                )
        if d.role == "target" and d.entry.fraction == 0:
            if d.space not in teacher_spaces or d.task not in teacher_tasks:
                missing = (
                    f"stem for its input space {d.space!r}"
                    if d.space not in teacher_spaces
                    else f"head for its task {d.task!r}"
                )
                raise ConfigError(
                    f"domains: target {d.name!r} has label_fraction 0 but the teacher has no "
                    f"{missing}; an unlabelled target needs the teacher's soft labels"
                )


def unreached_targets(domains: list[PreparedDomain]) -> list[str]:
    """One warning line per target no teacher stem reads: no source shares its input space,
    so it gets no teacher knowledge at all (its teacher result is null)."""
    teacher_spaces = sorted({d.space for d in domains if d.role == "source"})
    return [
        f"domains: target {d.name!r} gets no teacher knowledge: the teacher has no stem for "
        f"its input space {d.space!r} (it reads {teacher_spaces}), so the student learns it "
        "from its own labels alone; to distil into it, give it and a source the same "
        "`input_space` (a domain param), or add a source of that input space"
        for d in domains
        if d.role == "target" and d.space not in teacher_spaces
    ]
