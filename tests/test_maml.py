"""Meta-learned teachers (``teacher.maml``): Reptile and first-order MAML."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

from cdkd_core import load_config, run_pipeline
from cdkd_core.cli import app
from cdkd_core.engine.maml import (
    MetaSettings,
    MetaTask,
    adapted_parameters,
    fomaml_meta_gradient,
    inner_loop,
    meta_train,
    reptile_update,
)
from cdkd_core.errors import ConfigError, RunInterrupted
from cdkd_core.nets.network import MultiDomainNet
from cdkd_core.run.rundir import read_metrics
from cdkd_core.run.runner import resume_run
from cdkd_core.stages import teacher as teacher_module
from tests.stopping import without_timing
from tests.test_resume import _interrupt_at

torch.set_num_threads(1)


def _net(seed: int = 0) -> MultiDomainNet:
    torch.manual_seed(seed)
    return MultiDomainNet(
        stems={"a": nn.Linear(3, 4), "b": nn.Linear(2, 4)},
        trunk=nn.Sequential(nn.Linear(4, 4), nn.Tanh()),
        heads={"t1": nn.Linear(4, 3), "t2": nn.Linear(4, 2)},
    )


def _tasks(seed: int = 1) -> tuple[MetaTask, MetaTask]:
    g = torch.Generator().manual_seed(seed)
    a = MetaTask(
        "A", "a", "t1", torch.randn(12, 3, generator=g), torch.arange(12) % 3, torch.arange(12)
    )
    b = MetaTask(
        "B", "b", "t2", torch.randn(10, 2, generator=g), torch.arange(10) % 2, torch.arange(10)
    )
    return a, b


def _sgd_step(model: MultiDomainNet, task: MetaTask, rows: torch.Tensor, lr: float) -> dict:
    """theta - lr * grad L(theta) of the adapted parameters, computed on a copy."""
    clone = copy.deepcopy(model)
    params = adapted_parameters(clone, task)
    loss = nn.functional.cross_entropy(
        clone(task.x[rows], task.space, task.task), task.labels[rows]
    )
    grads = torch.autograd.grad(loss, list(params.values()))
    return {n: p.detach() - lr * g for (n, p), g in zip(params.items(), grads, strict=True)}


def test_reptile_update_with_one_inner_sgd_step_is_the_interpolation():
    model = _net()
    a, _ = _tasks()
    rows = torch.tensor([0, 1, 2, 3, 4, 5])
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    adapted = _sgd_step(model, a, rows, lr=0.1)
    reptile_update(model, [a], [[rows]], meta_lr=0.3, inner_lr=0.1, optimizer="sgd")
    for n, p in model.named_parameters():
        expected = theta[n] + 0.3 * (adapted[n] - theta[n]) if n in adapted else theta[n]
        torch.testing.assert_close(p.detach(), expected, msg=n)


def test_batched_reptile_averages_over_the_tasks_that_adapted_each_parameter():
    model = _net()
    a, b = _tasks()
    ra, rb = torch.tensor([0, 3, 5, 7]), torch.tensor([1, 2, 8])
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    adapted_a, adapted_b = _sgd_step(model, a, ra, 0.05), _sgd_step(model, b, rb, 0.05)
    reptile_update(model, [a, b], [[ra], [rb]], meta_lr=0.5, inner_lr=0.05, optimizer="sgd")
    for n, p in model.named_parameters():
        steps = [d[n] - theta[n] for d in (adapted_a, adapted_b) if n in d]
        expected = theta[n] + 0.5 * sum(steps) / len(steps)
        torch.testing.assert_close(p.detach(), expected, msg=n)
    # the trunk moved by the mean of both tasks, each head by its own task's step only
    assert set(adapted_a) & set(adapted_b) == {n for n in theta if n.startswith("trunk.")}


def _softmax_ce_grad(w, b, x, y):
    """Closed-form gradient of the mean softmax cross-entropy of ``x @ w.T + b``."""
    p = torch.softmax(x @ w.T + b, dim=1)
    delta = (p - nn.functional.one_hot(y, w.shape[0]).to(p.dtype)) / len(x)
    return delta.T @ x, delta.sum(0)


@pytest.mark.parametrize("inner_steps", [1, 3])
def test_fomaml_meta_gradient_is_the_query_gradient_at_the_adapted_weights(inner_steps):
    torch.manual_seed(0)
    head = nn.Linear(3, 4)
    model = MultiDomainNet({"s": nn.Identity()}, nn.Identity(), {"t": head})
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(20, 3, generator=g, dtype=torch.float32), torch.arange(20) % 4
    task = MetaTask("T", "s", "t", x, y, torch.arange(20))
    support, query = torch.arange(0, 8), torch.arange(8, 20)
    w, b = head.weight.detach().clone(), head.bias.detach().clone()
    # by hand: inner_steps SGD steps on the support batch, then the query gradient there
    w2, b2 = w.clone(), b.clone()
    for _ in range(inner_steps):
        gw, gb = _softmax_ce_grad(w2, b2, x[support], y[support])
        w2, b2 = w2 - 0.5 * gw, b2 - 0.5 * gb
    expected_w, expected_b = _softmax_ce_grad(w2, b2, x[query], y[query])

    grads, stats = fomaml_meta_gradient(
        model, task, support, query, inner_steps=inner_steps, inner_lr=0.5, optimizer="sgd"
    )
    torch.testing.assert_close(grads["heads.t.weight"], expected_w)
    torch.testing.assert_close(grads["heads.t.bias"], expected_b)
    # the meta weights are left as they were; the gradient is not the one at theta
    torch.testing.assert_close(head.weight.detach(), w)
    torch.testing.assert_close(head.bias.detach(), b)
    at_theta, _ = _softmax_ce_grad(w, b, x[query], y[query])
    assert not torch.allclose(grads["heads.t.weight"], at_theta)
    assert stats["loss_after"] < stats["loss_before"] + 1.0


def test_fomaml_meta_step_applies_the_averaged_meta_gradient():
    """One meta step of meta_train with fomaml: Adam's first step on g is -lr * g / |g|."""
    model = _net()
    a, _ = _tasks()
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    settings = MetaSettings(
        algorithm="fomaml",
        meta_steps=1,
        inner_steps=2,
        inner_lr=0.1,
        meta_lr=0.01,
        inner_optimizer="sgd",
        meta_lr_schedule="constant",
        support_size=5,
        query_size=5,
        seed=3,
    )
    meta_train(model, [a], settings)
    from cdkd_core.engine.maml import _split_rows

    support, query = _split_rows(a.index, 5, 5, _first_draw_generator(3, 1))
    reference = _net()
    grads, _ = fomaml_meta_gradient(
        reference, a, support, query, inner_steps=2, inner_lr=0.1, optimizer="sgd"
    )
    for n, p in model.named_parameters():
        if n in grads:
            g = grads[n]
            expected = theta[n] - 0.01 * g / (g.abs() + 1e-8)
            torch.testing.assert_close(p.detach(), expected, atol=1e-6, rtol=1e-4, msg=n)
        else:
            torch.testing.assert_close(p.detach(), theta[n], msg=n)


def _first_draw_generator(seed: int, n_tasks: int) -> torch.Generator:
    """The generator as meta_train's first task draw leaves it (one task permutation)."""
    g = torch.Generator().manual_seed(seed)
    torch.randperm(n_tasks, generator=g)
    return g


def test_only_the_sampled_tasks_head_and_stem_change_in_an_inner_loop():
    model = _net()
    a, _ = _tasks()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    inner_loop(model, a, [torch.arange(6), torch.arange(6, 12)], lr=0.1, optimizer="adam")
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed == set(adapted_parameters(model, a))
    assert any(n.startswith("heads.t1.") for n in changed)
    assert any(n.startswith("stems.a.") for n in changed)
    assert not any(n.startswith(("heads.t2.", "stems.b.")) for n in changed)


def test_reptile_meta_training_lowers_the_loss_before_adaptation():
    model = _net()
    tasks = list(_tasks())
    settings = MetaSettings(
        algorithm="reptile",
        meta_steps=60,
        inner_steps=3,
        inner_lr=0.05,
        meta_lr=0.5,
        inner_optimizer="sgd",
        support_size=6,
        log_every=20,
    )
    records = meta_train(model, tasks, settings)
    assert [r["step"] for r in records] == [20, 40, 60]
    assert records[-1]["loss_before"] < records[0]["loss_before"]
    assert records[-1]["meta_lr"] < records[0]["meta_lr"]  # linearly annealed


def _maml_config(tiny_config: dict, **maml) -> dict:
    tiny_config["teacher"]["maml"] = {
        "algorithm": "reptile",
        "meta_steps": 12,
        "inner_steps": 2,
        "support_size": 16,
        "log_every": 4,
        **maml,
    }
    return tiny_config


def test_reptile_teacher_runs_end_to_end(tiny_config, tmp_path, host):
    cfg = _maml_config(tiny_config)
    result = run_pipeline(load_config(cfg, host=host), output=tmp_path, host=host)
    summary = result.summary
    training = summary["teacher_training"]
    assert training["method"] == "reptile" and training["epochs"] == 1  # half of 2 epochs
    assert training["maml"]["meta_steps"] == 12 and training["maml"]["meta_lr"] == 0.5
    for d in summary["domains"].values():
        assert 0.0 <= d["teacher"] <= 1.0
    records = read_metrics(result.run_dir / "metrics.jsonl")
    meta = [r for r in records if r.get("stage") == "teacher_meta" and "step" in r]
    assert [r["step"] for r in meta] == [4, 8, 12]
    assert all(r["algorithm"] == "reptile" and r["loss_before"] > 0 for r in meta)
    epochs = [r for r in records if r.get("stage") == "teacher" and "val_score" in r]
    assert len([r for r in epochs if "event" not in r]) == 1  # the fine-tune


def test_fomaml_teacher_without_finetune(tiny_config, tmp_path, host):
    cfg = _maml_config(tiny_config, algorithm="fomaml", finetune_epochs=0, query_size=16)
    result = run_pipeline(load_config(cfg, host=host), output=tmp_path, host=host)
    assert result.summary["teacher_training"]["method"] == "fomaml"
    assert result.summary["teacher_training"]["epochs"] == 0
    records = read_metrics(result.run_dir / "metrics.jsonl")
    assert not [r for r in records if r.get("stage") == "teacher" and "epoch" in r]
    assert (result.run_dir / "teacher.safetensors").is_file()


def test_plain_teacher_summary_says_multitask(tiny_config, tmp_path, host):
    result = run_pipeline(load_config(tiny_config, host=host), output=tmp_path, host=host)
    # tiny_config sets epochs and lr, not patience: the tables' recipe gives the teacher 15
    assert result.summary["teacher_training"] == {
        "method": "multitask",
        "maml": None,
        "epochs": 2,
        "lr": 0.01,
        "patience": 15,
        "recipe": True,
    }


@pytest.mark.parametrize("stop_after", [1, 3])  # inside the teacher fine-tune; after it
def test_a_maml_run_resumes_to_the_same_summary(tiny_config, tmp_path, host, stop_after):
    cfg = _maml_config(tiny_config, finetune_epochs=2)
    reference = run_pipeline(load_config(cfg, host=host), output=tmp_path / "ref", host=host)
    run_dir = _interrupt_at(cfg, host, tmp_path / "stop", stop_after)
    resumed = resume_run(run_dir, host=host)

    assert without_timing(resumed.summary) == without_timing(reference.summary)


@pytest.mark.parametrize(
    ("maml", "where", "says"),
    [
        ({"algorithm": "maml2"}, "teacher.maml.algorithm", "'reptile' or 'fomaml'"),
        ({}, "teacher.maml.algorithm", "Field required"),
        ({"algorithm": "reptile", "meta_lr": 1.5}, "teacher.maml", "(0, 1]"),
        ({"algorithm": "fomaml", "inner_steps": 0}, "teacher.maml.inner_steps", "greater"),
        ({"algorithm": "reptile", "steps": 3}, "teacher.maml.steps", "unknown key"),
    ],
)
def test_bad_maml_config_is_refused_by_key(tiny_config, host, maml, where, says):
    tiny_config["teacher"]["maml"] = maml
    with pytest.raises(ConfigError) as info:
        load_config(tiny_config, host=host)
    message = str(info.value)
    assert f"{where}:" in message and says in message


def test_maml_belongs_to_the_teacher_slot_only(tiny_config, host):
    tiny_config["student"]["maml"] = {"algorithm": "reptile"}
    with pytest.raises(ConfigError, match=r"student\.maml: unknown key"):
        load_config(tiny_config, host=host)


def test_bad_maml_config_on_the_command_line_has_no_traceback(tiny_config, tmp_path, monkeypatch):
    from cdkd_core.host import plugin_host as plugins

    monkeypatch.setattr(plugins, "entry_points", lambda group: [])
    tiny_config["teacher"]["maml"] = {"algorithm": "sgd"}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code != 0
    assert "teacher.maml.algorithm" in result.output and "Traceback" not in result.output


def test_a_run_stopped_during_meta_training_starts_it_again_on_resume(
    tiny_config, tmp_path, host, monkeypatch
):
    cfg = _maml_config(tiny_config)
    reference = run_pipeline(load_config(cfg, host=host), output=tmp_path / "ref", host=host)
    real = teacher_module.meta_train_teacher

    def ctrl_c(ctx):
        ctx.stop.requested = True  # as the first Ctrl-C does: stop after this step
        return real(ctx)

    monkeypatch.setattr(teacher_module, "meta_train_teacher", ctrl_c)
    with pytest.raises(RunInterrupted):
        run_pipeline(load_config(cfg, host=host), output=tmp_path / "stop", host=host)
    monkeypatch.setattr(teacher_module, "meta_train_teacher", real)
    (run_dir,) = (tmp_path / "stop").iterdir()
    resumed = resume_run(run_dir, host=host)
    assert without_timing(resumed.summary) == without_timing(reference.summary)
