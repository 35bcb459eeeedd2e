"""Several processes: the collectives on a real gloo group, DistributedDataParallel training
against one process, and whole runs under torchrun (which must exit 0 every time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from cdkd_core.engine.distributed import (
    TORCHRUN_ENV,
    World,
    any_across,
    broadcast_object,
    current_world,
    gather_rows,
    shard_bounds,
    sum_across,
)

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]


WORKER = Path(__file__).with_name("ddp_worker.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    for name in TORCHRUN_ENV:
        env.pop(name, None)
    return env


def _worker(out: Path, *args: str, processes: int = 2) -> list[dict]:
    """Run tests/ddp_worker.py alone or on 2 processes; what each process saved."""
    command = [*TORCHRUN, str(WORKER)] if processes == 2 else [sys.executable, str(WORKER)]
    done = subprocess.run(
        [*command, *args[:1], str(out), *args[1:]], env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    names = ["rank0", "rank1"] if processes == 2 else ["single"]
    return [torch.load(out / f"{n}.pt", weights_only=True) for n in names]


# --------------------------------------------------------------------------- one process


def test_shards_cover_every_row_once() -> None:
    for n in (0, 1, 2, 7, 64):
        for size in (1, 2, 3, 8):
            rows = [r for rank in range(size) for r in range(*shard_bounds(n, World(rank, size)))]
            assert rows == list(range(n))


def test_collectives_are_identities_in_one_process() -> None:
    assert current_world() == World()
    t = torch.arange(6.0).reshape(3, 2)
    assert gather_rows(t, 3) is t
    assert any_across(True, False) == (True, False)
    values = {"a": torch.tensor(2.0)}
    assert sum_across(values) is values
    assert broadcast_object({"x": 1}) == {"x": 1}


# --------------------------------------------------------------------------- two processes


def test_collectives_on_two_processes(tmp_path: Path) -> None:
    for rank, r in enumerate(_worker(tmp_path, "collectives")):
        assert r["world"] == [rank, 2]
        assert torch.equal(r["gathered"], torch.arange(15.0).reshape(5, 3))
        assert r["flags"] == [True, False]
        assert {k: float(v) for k, v in r["sums"].items()} == {"a": 20.0, "b": 3.0}
        assert r["obj"] == {"dir": "from 0"}
        # d(w·x)/dw = x: process 0 has (1, 1), process 1 (2, 2); the mean is (1.5, 1.5)
        assert torch.equal(r["grad"], torch.full((1, 2), 1.5))
        assert torch.equal(r["local_grad"], torch.ones(1, 2))
        assert torch.equal(r["weight"], torch.zeros(2, 2))


@pytest.mark.parametrize("batch_size", [20, 25])
def test_ddp_training_follows_the_one_process_gradient(tmp_path: Path, batch_size: int) -> None:
    # 64 examples: batches of 20 split 10/10 (and a last 2/2), of 25 unevenly 13/12 and 7/7;
    # each process's loss is scaled by its share, so the steps match one process's
    (single,) = _worker(tmp_path, "fit", str(batch_size), processes=1)
    for r in _worker(tmp_path, "fit", str(batch_size)):
        for k, v in single["state"].items():
            assert torch.allclose(r["state"][k], v, atol=1e-5), k
        assert r["history"] == pytest.approx(single["history"], rel=1e-5)
        assert r["val"] == pytest.approx(single["val"], abs=1e-9)


# --------------------------------------------------------------------------- torchrun


@pytest.fixture
def tiny_yaml(tiny_config, tmp_path_factory) -> Path:
    tiny_config["train"]["threads"] = 1
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    return path


def _summary(out: Path) -> dict:
    (run,) = out.iterdir()
    return json.loads((run / "summary.json").read_text())


def _losses(out: Path) -> list[float]:
    (run,) = out.iterdir()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [v for r in records if isinstance(r.get("loss"), dict) for v in r["loss"].values()]


def test_torchrun_runs_exit_cleanly_and_match_one_process(tiny_yaml: Path, tmp_path: Path) -> None:
    """A 2-process gloo run exits 0 each time (gloo can abort at interpreter exit without
    the clean shutdown; the other 2-process runs of this file check it again) and gives
    the 1-process numbers: the tiny config labels every example and has no dropout, so only
    float rounding differs."""
    cli = [sys.executable, "-m", "cdkd_core", "run", str(tiny_yaml), "--quiet"]
    subprocess.run([*cli, "-o", str(tmp_path / "one")], env=_env(), check=True)
    one = _summary(tmp_path / "one")
    for i in range(2):  # the shortcut, then torchrun itself
        out = tmp_path / f"two{i}"
        if i == 0:  # the shortcut, which starts torchrun itself
            command = [*cli, "-o", str(out), "--nproc", "2"]
        else:
            command = [*TORCHRUN, "-m", "cdkd_core", *cli[3:]]
            command += ["-o", str(out)]
        done = subprocess.run(command, env=_env(), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        two = _summary(out)
        assert two["processes"] == 2
        for name, d in one["domains"].items():
            for who in ("teacher", "student", "baseline"):
                assert two["domains"][name][who] == pytest.approx(d[who], abs=1e-6)
        assert _losses(out) == pytest.approx(_losses(tmp_path / "one"), rel=1e-4)
        # process 0 alone wrote: one run directory, one log line per record
        assert len(list(out.iterdir())) == 1


def test_an_error_under_torchrun_is_reported_once(tiny_yaml: Path, tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "cdkd_core", "run", str(tiny_yaml), "--quiet", "--nproc", "2"]
    done = subprocess.run(
        [*cli, "-o", str(tmp_path), "--set", "student.feature_layer=nope"],
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert done.stderr.count("error: feature_layer 'nope'") == 1, done.stderr
    assert "Traceback" not in done.stderr and "ChildFailedError" not in done.stderr
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize(
    "teacher",
    [
        {
            "auto": {"ensemble_members": 2},
            "trunk": {"name": "mlp", "params": {"width": 16, "depth": 1}},
        },
    ],
    ids=["auto"],
)
def test_ensemble_and_classical_teachers_under_torchrun(tmp_path: Path, teacher: dict) -> None:
    """``teacher: auto`` under torchrun: its ensemble's members train sharded like one
    teacher (the function that trains ``teacher.ensemble``'s), its linear and tree
    candidates are fitted by process 0 and handed to the others (the function that fits
    ``teacher.model``), and the choice is made once (trees on breast_cancer, the linear map
    on wine): it ends as the one-process run does."""
    import yaml

    from cdkd_core.testing import tiny_pipeline_config

    config = {**tiny_pipeline_config(), "teacher": teacher}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    cli = [sys.executable, "-m", "cdkd_core", "run", str(path), "--quiet"]
    subprocess.run([*cli, "-o", str(tmp_path / "one")], env=_env(), check=True)
    done = subprocess.run(
        [*cli, "-o", str(tmp_path / "two"), "--nproc", "2"],
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = _summary(tmp_path / "one"), _summary(tmp_path / "two")
    assert two["processes"] == 2
    for name, d in one["domains"].items():
        for who in ("teacher", "student", "baseline"):
            assert two["domains"][name][who] == pytest.approx(d[who], abs=1e-6)
    selection = one["teacher_selection"]
    assert two["teacher_selection"]["choice"] == selection["choice"]
    # both kinds process 0 fits are chosen, so both are served under torchrun
    assert set(selection["choice"].values()) == {"hist_gbm", "linear"}
