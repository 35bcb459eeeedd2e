"""Resuming a stopped run from its checkpoint ends with the uninterrupted run's numbers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cdkd_core import load_config, run_pipeline
from cdkd_core.errors import ConfigError, RunInterrupted
from cdkd_core.run.checkpoint import (
    CHECKPOINT,
    PREVIOUS,
    load_checkpoint,
    save_checkpoint,
)
from cdkd_core.run.rundir import read_metrics
from cdkd_core.run.runner import resume_run
from tests.stopping import Stop, Watching, without_timing


def _config(tiny_config: dict, feedback: dict, gate: str | None = "none") -> dict:
    """The tiny run with ``feedback``, 3 epochs; ``gate`` None keeps the default teacher
    gate, whose second student pass (resumed in tests/test_teacher_gate_modes.py) the
    subprocess tests here leave out: their stops land in the stages every run has."""
    tiny_config["train"].update({"epochs": 3, "threads": 1})
    if gate is not None:
        tiny_config["train"]["teacher_gate"] = gate
    tiny_config["teacher"]["trunk"]["params"]["dropout"] = 0.1  # the torch RNG matters
    tiny_config["feedback"] = feedback
    return tiny_config


def _interrupt_at(cfg: dict, host, out: Path, stop_after: int) -> Path:
    """Run ``cfg`` and stop it (as Ctrl-C would) right after its ``stop_after``-th
    checkpoint; the run directory."""
    seen = {"n": 0}

    def stopping(state):
        seen["n"] += 1
        if seen["n"] == stop_after:
            raise Stop

    with pytest.raises(RunInterrupted, match="cdkd run --resume"):
        run_pipeline(
            load_config(cfg, host=host), output=out, host=host, checkpointer=Watching(stopping)
        )
    (run_dir,) = out.iterdir()
    return run_dir


FEEDBACK = [
    {"name": "mutual", "params": {"rounds": 2}},
    {"name": "hard_examples", "params": {"rounds": 2, "epochs": 1}},
]


@pytest.mark.parametrize("feedback", FEEDBACK, ids=lambda f: f["name"])
def test_resume_after_an_interruption_at_every_checkpoint(tiny_config, tmp_path, host, feedback):
    # mutual: every checkpoint of the stages every run has; hard_examples: around the
    # feedback, with the default teacher gate and its second student passes
    cfg = _config(
        tiny_config, feedback, gate=None if feedback["name"] == "hard_examples" else "none"
    )
    reference = run_pipeline(load_config(cfg, host=host), output=tmp_path / "ref", host=host)
    calls = {"n": 0}

    def counting(state):
        calls["n"] += 1

    run_pipeline(
        load_config(cfg, host=host),
        output=tmp_path / "count",
        host=host,
        checkpointer=Watching(counting),
    )
    # 3 teacher + 3 baseline + per round 3 student epochs and 1 feedback, and 3 more epochs
    # per second student pass (the gate, above on these tables, found the first student
    # below the baseline on a domain)
    records = read_metrics(reference.run_dir / "metrics.jsonl")
    second_passes = sum(1 for r in records if r.get("event") == "second_pass")
    total = calls["n"]
    assert total == 6 + 2 * 4 + 3 * second_passes
    # every checkpoint for one strategy; around the feedback for the other
    stops = range(1, total + 1) if feedback["name"] == "mutual" else (4, 9, 10, 11, 14)
    for stop_after in stops:
        run_dir = _interrupt_at(cfg, host, tmp_path / f"stop{stop_after}", stop_after)
        assert not (run_dir / "summary.json").exists()
        resumed = resume_run(run_dir, host=host)
        assert without_timing(resumed.summary) == without_timing(reference.summary), stop_after
        assert not (run_dir / CHECKPOINT).exists()  # a finished run keeps no checkpoint
        records = read_metrics(run_dir / "metrics.jsonl")
        assert any(r.get("event") == "resumed" for r in records)


def test_a_checkpoint_records_the_stage_key_whatever_the_labels(
    tiny_config, tmp_path, host, monkeypatch
):
    # every label a run shows (what it is doing, a key's text) renamed: a key rebuilt from
    # a label would come out wrong, and the resumed run would differ
    from cdkd_core.stages.context import StageContext
    from cdkd_core.stages.keys import BASELINE, TEACHER, StageKey, feedback_key, student_key

    monkeypatch.setattr(StageKey, "__str__", lambda self: "renamed")
    monkeypatch.setattr(
        StageContext, "where", property(lambda self: "renamed", lambda self, value: None)
    )
    cfg = _config(tiny_config, {"name": "mutual", "params": {"rounds": 2}})
    keys = []
    reference = run_pipeline(
        load_config(cfg, host=host),
        output=tmp_path / "ref",
        host=host,
        checkpointer=Watching(lambda state: keys.append(state.stage), write=False),
    )
    rounds = [[student_key(r)] * 3 + [feedback_key(r)] for r in range(2)]
    assert keys == [TEACHER] * 3 + [BASELINE] * 3 + rounds[0] + rounds[1]
    run_dir = _interrupt_at(cfg, host, tmp_path / "stop", 10)  # the first feedback's
    resumed = resume_run(run_dir, host=host)
    assert without_timing(resumed.summary) == without_timing(reference.summary)


def test_a_corrupted_checkpoint_falls_back_to_the_previous_one(tmp_path):
    save_checkpoint(tmp_path, {"stage": "teacher", "x": 1})
    save_checkpoint(tmp_path, {"stage": "baseline", "x": 2})
    data = bytearray((tmp_path / CHECKPOINT).read_bytes())
    data[-3] ^= 0xFF  # one flipped bit in the tensor data or header
    (tmp_path / CHECKPOINT).write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="previous one"):
        assert load_checkpoint(tmp_path)["x"] == 1
    (tmp_path / CHECKPOINT).write_bytes(bytes(data[: len(data) // 2]))  # torn
    with pytest.warns(UserWarning):
        assert load_checkpoint(tmp_path)["stage"] == "teacher"
    (tmp_path / PREVIOUS).write_bytes(b"junk")
    with pytest.raises(ConfigError, match="no usable checkpoint"):
        load_checkpoint(tmp_path)
    assert load_checkpoint(tmp_path / "empty") is None


def test_checkpoint_round_trips_nested_state(tmp_path):
    import torch

    state = {
        "a": {0: {"step": torch.tensor(3.0), "m": torch.ones(2, 2)}, "k": (1, 2.5, None)},
        "score": float("-inf"),
        "rng": torch.get_rng_state(),
        "nested": [{"x": "y"}, [1, 2]],
    }
    save_checkpoint(tmp_path, state)
    back = load_checkpoint(tmp_path)
    assert back["score"] == float("-inf") and back["a"]["k"] == (1, 2.5, None)
    assert torch.equal(back["a"][0]["m"], torch.ones(2, 2)) and 0 in back["a"]
    assert torch.equal(back["rng"], state["rng"]) and back["nested"] == [{"x": "y"}, [1, 2]]


def test_resume_refuses_a_finished_run_and_a_non_run(tiny_config, tmp_path, host):
    result = run_pipeline(load_config(tiny_config, host=host), output=tmp_path, host=host)
    with pytest.raises(ConfigError, match="finished already"):
        resume_run(result.run_dir, host=host)
    with pytest.raises(ConfigError, match="not a run directory"):
        resume_run(tmp_path / "nothing", host=host)


def _cli(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cdkd_core", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _epochs_logged(out: Path) -> int:
    runs = list(out.glob("*/metrics.jsonl"))
    if not runs:
        return 0
    try:
        return sum(1 for r in read_metrics(runs[0]) if "epoch" in r and "event" not in r)
    except ValueError:
        return 0


def test_a_killed_cdkd_run_resumes_to_the_same_summary(tiny_config, tmp_path):
    """A real ``cdkd run`` is killed (SIGKILL) at several points and resumed with
    ``cdkd run --resume``; each ends with the uninterrupted run's metrics."""
    cfg = _config(tiny_config, {"name": "mutual", "params": {"rounds": 2}})
    cfg["train"]["epochs"] = 4
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "CDKD_DISABLE_PLUGINS": "medical finance nlp"}
    ref = _cli("run", str(path), "--output", str(tmp_path / "ref"), "--quiet", "--json", env=env)
    out, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err
    reference = json.loads(out)
    # epochs logged: 4 teacher, 4 baseline, 4 + 4 student; kill in the teacher's stage and
    # in the student's first round (the other stages: the in-process tests below)
    interrupted = 0
    for kill_at in (2, 10):
        target = tmp_path / f"kill{kill_at}"
        proc = _cli("run", str(path), "--output", str(target), "--quiet", env=env)
        deadline = time.monotonic() + 300
        while _epochs_logged(target) < kill_at and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        (run_dir,) = target.iterdir()
        if (run_dir / "summary.json").exists():
            continue  # it finished before the kill landed
        interrupted += 1
        resumed = _cli("run", "--resume", str(run_dir), "--quiet", "--json", env=env)
        out, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, err
        assert without_timing(json.loads(out)) == without_timing(reference), kill_at
    assert interrupted == 2


def test_checkpoints_can_be_turned_off(tiny_config, tmp_path, host):
    tiny_config["train"]["checkpoints"] = False
    calls = []
    checkpointer = Watching(calls.append, write=False)
    run_pipeline(
        load_config(tiny_config, host=host), output=tmp_path, host=host, checkpointer=checkpointer
    )
    assert calls == []


def test_resume_from_a_checkpoint_inside_an_epoch(tiny_config, tmp_path, host):
    cfg = _config(tiny_config, {"name": "mutual", "params": {"rounds": 2}})
    cfg["train"].update({"checkpoint_steps": 2, "batch_size": 32})
    reference = run_pipeline(load_config(cfg, host=host), output=tmp_path / "ref", host=host)
    states = []

    def recording(state):
        states.append((state.stage.name, (state.fit or {}).get("in_epoch") is not None))

    run_pipeline(
        load_config(cfg, host=host),
        output=tmp_path / "count",
        host=host,
        checkpointer=Watching(recording),
    )
    inside = [i + 1 for i, (_, mid) in enumerate(states) if mid]
    assert len(inside) > 10  # wine and breast cancer in batches of 32: several per epoch
    for stop_after in inside[:: max(1, len(inside) // 6)]:
        run_dir = _interrupt_at(cfg, host, tmp_path / f"stop{stop_after}", stop_after)
        resumed = resume_run(run_dir, host=host)
        assert without_timing(resumed.summary) == without_timing(reference.summary), stop_after


def test_a_diverging_run_stops_with_advice_and_keeps_its_last_checkpoint(tiny_config, tmp_path):
    from cdkd_core.errors import TrainingError
    from tests.faulty_plugin import make_host

    host = make_host()
    tiny_config["losses"] = [{"name": "ce"}, {"name": "testing.nan_after"}]
    tiny_config["train"]["epochs"] = 6
    with pytest.raises(TrainingError, match=r"loss became nan .*lower learning rate"):
        run_pipeline(load_config(tiny_config, host=host), output=tmp_path, host=host)
    (run_dir,) = tmp_path.iterdir()
    state = load_checkpoint(run_dir)  # the last good epoch is kept for a look or a resume
    assert state is not None and state["stage"] in ("teacher", "baseline", "student")


def test_ctrl_c_checkpoints_exits_130_and_resumes(tiny_config, tmp_path):
    cfg = _config(tiny_config, {"name": "none"})
    cfg["train"]["epochs"] = 40  # long enough to be interrupted in the middle
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "CDKD_DISABLE_PLUGINS": "medical finance nlp"}
    ref = _cli("run", str(path), "--output", str(tmp_path / "ref"), "--quiet", "--json", env=env)
    out, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err
    target = tmp_path / "stopped"
    proc = _cli("run", str(path), "--output", str(target), "--quiet", env=env)
    deadline = time.monotonic() + 300
    while _epochs_logged(target) < 45 and proc.poll() is None:  # inside the baseline
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "cdkd run --resume" in err and "Traceback" not in err
    (run_dir,) = target.iterdir()
    state = load_checkpoint(run_dir)
    assert state is not None and state["fit"]["in_epoch"] is not None  # saved at the step
    resumed = _cli("run", "--resume", str(run_dir), "--quiet", "--json", env=env)
    out2, err2 = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err2
    assert without_timing(json.loads(out2)) == without_timing(json.loads(out))


def test_the_run_records_its_providers_and_resume_refuses_a_changed_one(tiny_config, tmp_path):
    from cdkd_core import __version__
    from cdkd_core.host.plugin_host import PluginHost
    from cdkd_core.run.providers import check_providers

    host = PluginHost(entry_points=False)
    run_dir = _interrupt_at(_config(tiny_config, {"name": "none"}), host, tmp_path / "a", 1)
    providers = json.loads((run_dir / "providers.json").read_text())
    builtin = {"plugin": "cdkd.encoders", "version": __version__}
    assert providers["encoders"] == {"pca": builtin}
    assert set(providers["losses"]) == {"ce", "kd", "hint"}
    assert providers["domains"]["sklearn.wine"]["plugin"] == "cdkd.domains"
    assert providers["architectures"] == {"mlp": {**builtin, "plugin": "cdkd.architectures"}}
    assert providers["feedback"] == {"none": {**builtin, "plugin": "cdkd.feedback"}}

    changed = PluginHost(entry_points=False)
    changed.plugins["cdkd.encoders"].version = "99.0"
    with pytest.raises(ConfigError) as info:
        resume_run(run_dir, host=changed)
    message = str(info.value)
    assert message.startswith(f"--resume {run_dir}: the run's components changed")
    assert (
        f"encoder 'pca' came from plugin 'cdkd.encoders' {__version__} and now comes from "
        "plugin 'cdkd.encoders' 99.0"
    ) in message
    assert "loss" not in message  # only what changed is named

    from cdkd_core.builtins.encoders import PCAEncoder
    from cdkd_core.host.hookspecs import hookimpl

    class OtherPCA(PCAEncoder):
        """Another pca."""

        name = "pca"

    class Clash:
        @hookimpl
        def register_encoders(self, register):
            register(OtherPCA)

    # another plugin's pca does not change what the bare name means (the built-in's)
    clashing = PluginHost(entry_points=False, plugins=[("clash", Clash())])
    assert clashing.get("encoders", "pca") is PCAEncoder
    check_providers(run_dir, clashing)  # nothing changed: no error
    resumed = resume_run(run_dir, host=PluginHost(entry_points=False))  # unchanged: goes on
    assert (resumed.run_dir / "summary.json").is_file()
