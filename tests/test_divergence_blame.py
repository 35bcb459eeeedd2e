"""A diverged run names the first component whose values stopped being finite: a plugin's
stem or trunk returning NaN, or a plugin loss becoming NaN, is named with its plugin and
version (issue 26, class 4); the search runs only once the loss is not finite."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml

from cdkd_core import load_config, run_pipeline
from cdkd_core.engine.non_finite import Diverged, NonFinite
from cdkd_core.errors import TrainingError
from tests.conftest import TINY
from tests.rogue_plugin import make_host

torch.set_num_threads(1)


def _with(**changes) -> dict:
    config = copy.deepcopy(TINY)
    config["train"]["epochs"] = 1
    config.update(changes)
    return config


def _diverge(config: dict, tmp_path) -> str:
    host = make_host()
    with pytest.raises(TrainingError) as info:
        run_pipeline(load_config(config, host=host), output=tmp_path, host=host)
    assert isinstance(info.value, Diverged)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_nan_stem_of_a_plugin_is_named_with_its_plugin(tmp_path):
    student = {**TINY["student"], "stems": {"tabular": {"name": "rogue.nan_stem"}}}
    message = _diverge(_with(student=student), tmp_path)
    assert message.startswith("the loss became nan in epoch 1 of baseline training on domain ")
    domain = message.split(" on domain ", 1)[1].split(" ", 1)[0]  # the batch's: its stem
    assert (
        f"; the first non-finite values came from the baseline's stem for input space {domain} "
        "(architecture 'rogue.nan_stem' of plugin 'rogue' 0.1); it made them from finite "
        "inputs and weights: look there first, else try a lower learning rate (train.lr)"
    ) in message


def test_a_nan_trunk_of_a_plugin_is_named_with_its_plugin(tmp_path):
    teacher = {"trunk": {"name": "rogue.nan_trunk", "params": {"width": 16, "depth": 1}}}
    message = _diverge(_with(teacher=teacher), tmp_path)
    assert message.startswith("the loss became nan in epoch 1 of teacher training on domain ")
    assert (
        "the first non-finite values came from the teacher's trunk (architecture "
        "'rogue.nan_trunk' of plugin 'rogue' 0.1)"
    ) in message


def test_a_nan_loss_of_a_plugin_is_named_with_its_plugin(tmp_path):
    message = _diverge(_with(losses=[{"name": "ce"}, {"name": "rogue.nan"}]), tmp_path)
    assert message.startswith(
        "the loss became nan in epoch 1 of student training (round 0) on domain "
    )
    assert "(terms: 0:ce=" in message and "1:rogue.nan=nan)" in message
    assert (
        "the first non-finite values came from loss term '1:rogue.nan' (loss 'rogue.nan' of "
        "plugin 'rogue' 0.1); it made them from finite inputs: look there first"
    ) in message


def test_weights_driven_to_infinity_blame_the_learning_rate_not_the_component(
    tmp_path, monkeypatch
):
    from cdkd_core.builtins.architectures import MLP

    host = make_host()
    teacher = {"trunk": {"name": "mlp", "params": {"width": 16, "depth": 1}}}
    config = load_config(_with(teacher=teacher), host=host)
    real = MLP.build_trunk

    def poisoned(self):
        trunk = real(self)
        with torch.no_grad():
            next(trunk.parameters()).fill_(float("inf"))
        return trunk

    monkeypatch.setattr(MLP, "build_trunk", poisoned)  # the teacher diverges first
    with pytest.raises(Diverged) as info:
        run_pipeline(config, output=tmp_path, host=host)
    message = str(info.value)
    assert (
        "came from the teacher's trunk (architecture 'mlp', built in), whose weights are no "
        "longer finite; try a lower learning rate (train.lr)"
    ) in message


def test_a_divergence_is_one_error_line_through_the_cli(monkeypatch, tmp_path):
    import importlib

    from cdkd_core.testing import invoke_cli

    monkeypatch.setattr(importlib.import_module("cdkd_core.cli.app"), "make_host", make_host)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(_with(losses=[{"name": "ce"}, {"name": "rogue.nan"}])))
    result = invoke_cli("run", str(path), "--output", str(tmp_path / "runs"), "--quiet")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: the loss became nan in epoch 1 of student training")
    assert "(loss 'rogue.nan' of plugin 'rogue' 0.1)" in lines[0]
    assert "Traceback" not in result.output


def test_the_message_without_a_finding_or_from_another_process():
    plain = Diverged(3, "x", {"0:ce": float("nan")})
    assert str(plain) == (
        "the loss became nan in epoch 3 on domain 'x' (terms: 0:ce=nan); try a lower "
        "learning rate (train.lr) or, for kd, a lower temperature"
    )
    other = Diverged(2, "x", None)
    other.attribute("student training (round 1)", "the student", None)
    assert str(other).startswith(
        "the loss became non-finite in epoch 2 of student training (round 1) on domain 'x' "
        "(in another process)"
    )
    teacher = Diverged(1, "x", {"1:kd": float("inf")}, NonFinite("teacher", "teacher_logits"))
    assert "came from the batch's cached teacher outputs (teacher_logits); try" in str(teacher)
