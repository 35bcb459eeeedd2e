"""The training loop's checkpointed state (:class:`LoopSnapshot`): its on-disk form keeps the
checkpoint format's keys, an older checkpoint still reads, and a fit resumed from any
snapshot ends bit for bit as the uninterrupted one; and what a stage's training is
(:class:`TrainSpec`)."""

from __future__ import annotations

import copy

import pytest
import torch

from cdkd_core.engine.fit import fit
from cdkd_core.engine.fit_state import EpochPosition, LoopSnapshot
from cdkd_core.stages.keys import TEACHER, student_key
from cdkd_core.stages.training import TrainSpec
from tests.test_training import _ce, _domain, _model, _plan, _same, _settings

#: the keys of a checkpoint's ``fit`` state, in the file's order
LOOP_KEYS = [
    "epoch",
    "model",
    "losses",
    "optimizer",
    "scheduler",
    "scaler",
    "generator",
    "torch_rng",
    "best_epoch",
    "best_score",
    "history",
    "best_state",
    "stale",
    "stopped",
    "global_step",
    "in_epoch",
]
IN_EPOCH_KEYS = ["generator", "position", "sums", "steps", "torch_rng"]


def _checkpointed_fit() -> tuple[list[dict], dict[str, torch.Tensor], object]:
    """A fit with checkpoints inside its epochs: every checkpoint's on-disk form (copied as
    it was taken), the final weights and the result."""
    d = _domain()
    states: list[dict] = []
    model = _model(d)
    torch.manual_seed(3)
    result = fit(
        model,
        [_plan(d)],
        _ce(),
        _settings(epochs=4, scheduler="cosine", checkpoint_steps=3),
        on_checkpoint=lambda snapshot: states.append(copy.deepcopy(snapshot.to_state())),
    )
    return states, copy.deepcopy(model.state_dict()), result


def test_the_on_disk_form_keeps_the_checkpoint_keys():
    states, _, _ = _checkpointed_fit()
    assert all(list(state) == LOOP_KEYS for state in states)
    inside = [s for s in states if s["in_epoch"] is not None]
    assert inside and all(list(s["in_epoch"]) == IN_EPOCH_KEYS for s in inside)
    for state in states:
        again = LoopSnapshot.from_state(state).to_state()
        assert list(again) == LOOP_KEYS and again["epoch"] == state["epoch"]
        assert again["global_step"] == state["global_step"]


@pytest.mark.parametrize("which", ["inside an epoch", "after an epoch"])
def test_a_fit_resumed_from_a_snapshot_ends_as_the_uninterrupted_one(which):
    states, weights, result = _checkpointed_fit()
    inside = which == "inside an epoch"
    state = next(s for s in states[1:] if (s["in_epoch"] is not None) == inside)
    d = _domain()
    model = _model(d, seed=9)  # the snapshot's weights replace these
    resumed = fit(
        model,
        [_plan(d)],
        _ce(),
        _settings(epochs=4, scheduler="cosine", checkpoint_steps=3),
        resume=LoopSnapshot.from_state(copy.deepcopy(state)),
    )
    assert _same(model.state_dict(), weights)
    assert (resumed.best_epoch, resumed.best_score) == (result.best_epoch, result.best_score)
    assert resumed.history == result.history


def test_a_checkpoint_from_before_loss_scaling_and_inside_epoch_checkpoints_reads():
    states, _, _ = _checkpointed_fit()
    older = {k: v for k, v in states[-1].items() if k not in ("scaler", "global_step", "in_epoch")}
    snapshot = LoopSnapshot.from_state(older)
    assert (snapshot.scaler, snapshot.global_step, snapshot.in_epoch) == ({}, 0, None)


def test_keys_beside_the_loops_are_ignored():
    states, _, _ = _checkpointed_fit()
    kept = {**states[0], "member": 1, "gate_after": {"x": {"falls_back": True}}}
    assert list(LoopSnapshot.from_state(kept).to_state()) == LOOP_KEYS
    inside = next(s for s in states if s["in_epoch"] is not None)
    position = LoopSnapshot.from_state(inside).in_epoch
    assert isinstance(position, EpochPosition) and position.to_state().keys() == set(IN_EPOCH_KEYS)


def test_a_train_spec_labels_its_stage():
    assert TrainSpec(key=TEACHER, network="teacher").label == "teacher"
    assert TrainSpec(key=TEACHER, network="teacher", member=2).label == "teacher member 2"
    assert TrainSpec(key=student_key(1), network="student").label == "student (round 1)"
