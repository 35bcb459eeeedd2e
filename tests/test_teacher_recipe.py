"""The tabular recipe is the default of a teacher over tables: ``teacher_lr``,
``teacher_epochs`` and ``teacher_patience`` resolved from the config and the sources."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import yaml

from cdkd_core import load_config, run_pipeline
from cdkd_core.config.loading import dump_config
from cdkd_core.config.models import DEFAULT_TEACHER_TRAIN
from cdkd_core.stages.teacher import teacher_training
from cdkd_core.stages.training import fit_settings, teacher_train_values

TABLES = [SimpleNamespace(modality="tabular"), SimpleNamespace(modality="tabular")]
IMAGE = [SimpleNamespace(modality="tabular"), SimpleNamespace(modality="image")]
RECIPE = {"lr": 0.003, "epochs": 60, "patience": 15}


def _config(host, **train):
    data = {
        "domains": [{"name": "sklearn.wine", "role": "source"}],
        "train": {"device": "cpu", **train},
    }
    return load_config(data, host=host)


def test_tables_with_nothing_set_take_the_recipe(host):
    values = teacher_train_values(_config(host), TABLES)
    assert values == {**RECIPE, "recipe": True}
    assert RECIPE == {k.removeprefix("teacher_"): v for k, v in DEFAULT_TEACHER_TRAIN.items()}


def test_a_base_setting_written_out_is_the_teachers_too(host):
    values = teacher_train_values(_config(host, epochs=3), TABLES)
    assert values == {"lr": 0.003, "epochs": 3, "patience": 15, "recipe": True}
    values = teacher_train_values(_config(host, epochs=3, lr=0.01, patience=4), TABLES)
    assert values == {"lr": 0.01, "epochs": 3, "patience": 4, "recipe": False}
    # written as its default value, it is still written: the base setting
    values = teacher_train_values(_config(host, epochs=20), TABLES)
    assert values["epochs"] == 20


def test_explicit_teacher_settings_win(host):
    config = _config(host, epochs=3, teacher_epochs=7, teacher_lr=0.02, teacher_patience=2)
    assert teacher_train_values(config, TABLES) == {
        "lr": 0.02,
        "epochs": 7,
        "patience": 2,
        "recipe": False,
    }
    config = _config(host, teacher_epochs=7)  # the others from the recipe
    assert teacher_train_values(config, TABLES) == {"lr": 0.003, "epochs": 7, "patience": 15} | {
        "recipe": True
    }


def test_a_source_that_is_not_a_table_keeps_the_base_values(host):
    config = _config(host)
    base = {"lr": 1e-3, "epochs": 20, "patience": None, "recipe": False}
    assert teacher_train_values(config, IMAGE) == base
    assert teacher_train_values(config, [SimpleNamespace(modality="text")]) == base
    assert teacher_train_values(config, None) == base  # sources unknown
    assert teacher_train_values(config, []) == base


def test_fit_settings_resolve_the_teacher_and_leave_the_student(host):
    config = _config(host, epochs=5)
    cpu = torch.device("cpu")
    teacher = fit_settings(config, cpu, teacher=True, seed=0, layer="trunk", sources=TABLES)
    assert (teacher.lr, teacher.epochs, teacher.patience) == (0.003, 5, 15)
    student = fit_settings(config, cpu, teacher=False, seed=0, layer="trunk", sources=TABLES)
    assert (student.lr, student.epochs, student.patience) == (1e-3, 5, None)
    other = fit_settings(config, cpu, teacher=True, seed=0, layer="trunk", sources=IMAGE)
    assert (other.lr, other.epochs, other.patience) == (1e-3, 5, None)


def test_teacher_training_reports_the_resolved_values(host):
    config = _config(host)
    assert teacher_training(config, TABLES) == {
        "method": "multitask",
        "maml": None,
        "epochs": 60,
        "lr": 0.003,
        "patience": 15,
        "recipe": True,
    }
    assert teacher_training(config, IMAGE)["recipe"] is False


def test_the_runs_config_yaml_keeps_the_base_settings_unset(host):
    """A run's config.yaml (what ``--resume`` reads) keeps lr, epochs and patience unset
    when the config did: a resumed run resolves the teacher's as the run did."""
    config = _config(host, epochs=3)
    text = dump_config(config)
    written = yaml.safe_load(text)["train"]
    assert written["epochs"] == 3 and "lr" not in written and "patience" not in written
    again = load_config(yaml.safe_load(text), host=host)
    assert again == config
    assert teacher_train_values(again, TABLES) == teacher_train_values(config, TABLES)
    assert dump_config(again) == text


@pytest.mark.parametrize("patience", [None, 3])
def test_a_tiny_run_trains_its_teacher_with_the_recipe(tiny_config, tmp_path, host, patience):
    torch.set_num_threads(1)
    if patience is not None:
        tiny_config["train"]["patience"] = patience
    result = run_pipeline(load_config(tiny_config, host=host), output=tmp_path, host=host)
    # tiny_config sets epochs and lr: the teacher takes them, and the recipe's patience
    # unless the config sets one
    assert result.summary["teacher_training"] == {
        "method": "multitask",
        "maml": None,
        "epochs": 2,
        "lr": 0.01,
        "patience": 15 if patience is None else patience,
        "recipe": patience is None,
    }
    written = yaml.safe_load((result.run_dir / "config.yaml").read_text())["train"]
    assert ("patience" in written) is (patience is not None)


def test_overrides_on_a_validated_config_keep_the_recipe(tiny_config, tmp_path, host):
    """run_pipeline(config, overrides=...) on a validated config re-validates it without
    setting what it left unset: lr and epochs given as overrides, patience the recipe's."""
    torch.set_num_threads(1)
    del tiny_config["train"]["epochs"], tiny_config["train"]["lr"]
    config = load_config(tiny_config, host=host)
    result = run_pipeline(config, overrides=["train.epochs=2"], output=tmp_path, host=host)
    training = result.summary["teacher_training"]
    assert (training["epochs"], training["lr"], training["patience"]) == (2, 0.003, 15)
    assert training["recipe"] is True


def test_a_maml_fine_tune_takes_half_the_resolved_teacher_epochs(host):
    from cdkd_core.stages.teacher import finetune_epochs

    data = {
        "domains": [{"name": "sklearn.wine", "role": "source"}],
        "teacher": {"trunk": {"name": "mlp"}, "maml": {"algorithm": "reptile"}},
        "train": {"device": "cpu"},
    }
    config = load_config(data, host=host)
    assert finetune_epochs(config, TABLES) == DEFAULT_TEACHER_TRAIN["teacher_epochs"] // 2
    assert finetune_epochs(config, IMAGE) == config.train.epochs // 2  # not all tables
    data["train"]["teacher_epochs"] = 8
    assert finetune_epochs(load_config(data, host=host), TABLES) == 4
