"""A domain's ``load`` that returns something other than ``DomainData`` is a broken
contract naming the plugin, its version and the stage, not an AttributeError deep in the
core (issue 26, class 1a); ``check_domain`` and ``check_feedback`` give plugin authors the
checks of those two kinds in one call each."""

from __future__ import annotations

import copy
import dataclasses
import importlib

import pytest
import torch
import yaml
from torch import nn

from cdkd_core import load_config, run_pipeline
from cdkd_core.builtins.domains import Wine
from cdkd_core.builtins.feedback import HardExamples, MutualLearning, NoFeedback
from cdkd_core.components.contracts import ContractError
from cdkd_core.components.domain import DomainData, Split
from cdkd_core.plugin_api import check_domain, check_feedback
from cdkd_core.testing import invoke_cli
from tests.conftest import TINY
from tests.rogue_plugin import DictWine, LeakyWine, NoneWine, make_host

torch.set_num_threads(1)


def _config(domain: str) -> dict:
    config = copy.deepcopy(TINY)
    config["train"]["epochs"] = 1
    config["domains"] = [{"name": domain, "role": "source"}, TINY["domains"][1]]
    return config


# --------------------------------------------------------------------------- in a run


@pytest.mark.parametrize(("domain", "found"), [("rogue.none", "None"), ("rogue.dict", "a dict")])
def test_a_domain_returning_no_domain_data_is_refused_naming_its_plugin(tmp_path, domain, found):
    host = make_host()
    with pytest.raises(ContractError) as info:
        run_pipeline(load_config(_config(domain), host=host), output=tmp_path, host=host)
    assert str(info.value) == (
        f"plugin 'rogue' 0.1, domain '{domain}', broke its contract during loading domains: "
        f"load(seed=0) returned {found}; expected a DomainData (its train, val and test "
        "splits, classes and metrics)"
    )
    assert list(tmp_path.iterdir()) == []  # refused before training: nothing left


def test_it_is_one_error_line_through_the_cli(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.import_module("cdkd_core.cli.app"), "make_host", make_host)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(_config("rogue.none")))
    result = invoke_cli("run", str(path), "--output", str(tmp_path / "runs"), "--quiet")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: plugin 'rogue' 0.1, domain 'rogue.none', broke its contract during loading "
        "domains: load(seed=0) returned None; expected a DomainData (its train, val and test "
        "splits, classes and metrics)"
    ]
    assert "Traceback" not in result.output


def test_outside_a_run_the_plugin_is_named_too():
    from cdkd_core.data.preparation import prepare_domains

    host = make_host()
    with pytest.raises(ContractError, match=r"^plugin 'rogue' 0\.1, domain 'rogue\.dict', "):
        prepare_domains(load_config(_config("rogue.dict"), host=host), host)


# --------------------------------------------------------------------------- check_domain


class _Noisy(Wine):
    """Wine whose features move on each load (no seed)."""

    name = "test.noisy"

    def load(self, seed):
        data = super().load(seed)
        train = data.splits["train"]
        noisy = train.student_x + torch.rand(()) * 1e-3
        splits = {**data.splits, "train": Split.single_view(noisy, train.y)}
        return dataclasses.replace(data, splits=splits)


class _BadMetric(Wine):
    """Wine scored by a metric cdkd does not know."""

    name = "test.bad_metric"

    def load(self, seed):
        data = super().load(seed)
        data.metrics = ["accuracy", "mcc"]
        return data


class _Infinite(Wine):
    """Wine with an infinity in its val split."""

    name = "test.infinite"

    def load(self, seed):
        data = super().load(seed)
        data.splits["val"].student_x[0, 0] = float("inf")
        return data


def test_check_domain_passes_a_sound_domain_and_returns_its_data():
    data = check_domain(Wine)
    assert isinstance(data, DomainData) and len(data.splits["test"]) > 0
    capped = check_domain(Wine, seed=3, params={"max_examples": 60})
    assert sum(len(s) for s in capped.splits.values()) <= 60
    assert isinstance(check_domain(Wine.from_params({})), DomainData)  # an instance too


@pytest.mark.parametrize(
    ("domain", "fragment"),
    [
        (NoneWine, "domain 'rogue.none' broke its contract: load(seed=0) returned None;"),
        (DictWine, "domain 'rogue.dict' broke its contract: load(seed=0) returned a dict;"),
        (_Noisy, "two loads with one seed differ: the train split's teacher_x differs"),
        (LeakyWine, "3 of 36 test examples repeat a train example exactly (student view)"),
        (_BadMetric, "unknown metric(s) ['mcc']; known: ["),
        (_Infinite, "its val split's teacher_x has NaN or infinite values"),
    ],
)
def test_check_domain_names_what_broke(domain, fragment):
    with pytest.raises(AssertionError) as info:
        check_domain(domain)
    assert fragment in str(info.value)


def test_check_domain_lets_a_share_of_repeated_rows_through_when_asked():
    check_domain(LeakyWine, max_shared=0.1)


# --------------------------------------------------------------------------- check_feedback


def test_check_feedback_passes_the_built_in_strategies():
    assert check_feedback(NoFeedback()) is False
    assert check_feedback(MutualLearning.from_params({"lr": 0.01})) is False
    assert check_feedback(HardExamples.from_params({"epochs": 1})) is True


class _ReturnsTeacher(NoFeedback):
    """Returns a new teacher instead of changing the one it was given."""

    name = "test.returns_teacher"
    updates_teacher = True

    def after_round(self, ctx):
        return copy.deepcopy(ctx.teacher)


class _Quiet(NoFeedback):
    """Fine-tunes the teacher but says it did not."""

    name = "test.quiet"
    updates_teacher = True

    def after_round(self, ctx):
        with torch.no_grad():
            next(ctx.teacher.parameters()).add_(1.0)
        return False


class _PeeksAtTest(NoFeedback):
    """Reads the test split."""

    name = "test.peeks"

    def after_round(self, ctx):
        ctx.predict(ctx.student, "test", "test")
        return False


class _Sneaky(NoFeedback):
    """Says it never updates the teacher, and does."""

    name = "test.sneaky"

    def after_round(self, ctx):
        with torch.no_grad():
            next(ctx.teacher.parameters()).mul_(2.0)
        return True


class _Grows(NoFeedback):
    """Gives the teacher a new head."""

    name = "test.grows"
    updates_teacher = True

    def after_round(self, ctx):
        ctx.teacher.heads["test"] = nn.Linear(8, 5)
        return True


class _TrainsStudent(MutualLearning):
    """A live strategy that also steps the student."""

    name = "test.trains_student"

    def student_step(self, teacher, step):
        with torch.no_grad():
            next(step.student.parameters()).add_(0.1)


class _Unsaveable(MutualLearning):
    """A live strategy whose state holds a function."""

    name = "test.unsaveable"

    def state_dict(self):
        return {"schedule": lambda step: 0.1}


@pytest.mark.parametrize(
    ("strategy", "fragment"),
    [
        (_ReturnsTeacher, "after_round returned a MultiDomainNet; expected True or False"),
        (_Quiet, "after_round changed the teacher but returned False"),
        (_PeeksAtTest, "asked ctx.predict for the 'test' split of 'test'; test data never"),
        (_Sneaky, "changed the teacher's weights, but its updates_teacher is False"),
        (_Grows, "after_round changed the teacher's parameter names or shapes"),
        (_TrainsStudent, "student_step changed the student; it must leave it as it is"),
        (_Unsaveable, "state_dict() does not survive a checkpoint"),
    ],
)
def test_check_feedback_names_what_broke(strategy, fragment):
    with pytest.raises(AssertionError) as info:
        check_feedback(strategy())
    message = str(info.value)
    assert message.startswith(f"feedback strategy '{strategy.name}' broke its contract: ")
    assert fragment in message


def test_a_strategy_returning_a_new_teacher_is_refused_in_a_run(tmp_path):
    """The pipeline checks after_round's result too: a returned teacher is not dropped
    silently."""
    from cdkd_core import hookimpl
    from cdkd_core.host.plugin_host import PluginHost

    class Plugin:
        @hookimpl
        def register_feedback(self, register):
            register(_ReturnsTeacher)

    host = PluginHost(entry_points=False, plugins=[("fb", Plugin())])
    config = _config(TINY["domains"][0]["name"])
    config["feedback"] = {"name": _ReturnsTeacher.name, "params": {"rounds": 2}}
    with pytest.raises(ContractError, match="after_round returned a MultiDomainNet; expected"):
        run_pipeline(load_config(config, host=host), output=tmp_path, host=host)
