"""Data larger than memory: scratch files, chunked checks and standardisation, teacher
outputs and knowledge vectors on disk, and a run on disk equal to the run in RAM."""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cdkd_core.builtins.encoders import PCAEncoder
from cdkd_core.components.domain import DomainData, Split
from cdkd_core.config.loading import parse_config
from cdkd_core.data import scratch as scratch_module
from cdkd_core.data.preparation import Standardizer, prepare_domains
from cdkd_core.data.scratch import ScratchSpace, is_memory_mapped, open_npy, row_chunks
from cdkd_core.engine.inference import read_features
from cdkd_core.errors import ConfigError, DataError
from cdkd_core.nets.assembly import build_network
from cdkd_core.run.runner import run_pipeline
from cdkd_core.stages.knowledge import extract_knowledge
from cdkd_core.stages.teacher_cache import TeacherCache

torch.set_num_threads(1)


@pytest.fixture
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 64 bytes of float64 (a few rows), so small tensors take the chunked paths."""
    monkeypatch.setattr(scratch_module, "CHUNK_BYTES", 64)


# --------------------------------------------------------------------------- scratch space


def test_on_disk_rule() -> None:
    mib = 2**20
    auto = ScratchSpace(None, "auto", threshold_mb=2)
    assert not auto.on_disk(2 * mib) and auto.on_disk(2 * mib + 1)
    assert auto.on_disk(10, mapped=True)  # derived from memory-mapped inputs
    assert not ScratchSpace(None, "memory").on_disk(10**12, mapped=True)
    assert ScratchSpace(None, "disk").on_disk(1)
    with pytest.raises(ValueError, match="auto, memory or disk"):
        ScratchSpace(None, "ram")  # type: ignore[arg-type]


def test_scratch_files_live_in_a_process_directory_and_are_removed(tmp_path: Path) -> None:
    root = tmp_path / "run" / "cache"
    space = ScratchSpace(root, "disk")
    assert not root.exists()  # nothing made before the first array
    a = space.empty("teacher-a/b", (3, 2), torch.float32)
    a[:] = torch.arange(6.0).reshape(3, 2)
    (directory,) = root.iterdir()
    assert directory == space.directory and directory.name.startswith(f"{os.getpid()}-")
    assert [p.name for p in directory.iterdir()] == ["teacher-a_b.1.bin"]
    assert is_memory_mapped(a) and is_memory_mapped(a[1:]) and not is_memory_mapped(a[[0, 2]])
    assert not is_memory_mapped(torch.zeros(3))
    # the file holds the values, float32, row-major
    np.testing.assert_array_equal(
        np.fromfile(directory / "teacher-a_b.1.bin", np.float32), range(6)
    )
    b = space.empty("teacher-a/b", (2,), torch.int64)  # replaces the file; `a` keeps its data
    b[:] = torch.tensor([7, 8])
    assert a[2, 1] == 5 and b.tolist() == [7, 8]
    assert [p.name for p in directory.iterdir()] == ["teacher-a_b.2.bin"]
    space.release("teacher-a/b")
    assert list(directory.iterdir()) == []
    assert space.empty("none", (0, 4), torch.float32).shape == (0, 4)  # no file for nothing
    space.close()
    assert not root.exists() and a[1, 0] == 2  # mapped data outlive their files


def test_scratch_without_root_uses_a_temporary_directory() -> None:
    space = ScratchSpace(None, "disk")
    space.empty("x", (2,), torch.float32)
    directory = space.directory
    assert directory is not None and directory.is_dir()
    del space  # garbage collection removes it
    assert not directory.exists()


def test_open_npy_maps_copy_on_write(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.arange(6, dtype=np.float32).reshape(3, 2))
    x = open_npy(path)
    assert is_memory_mapped(x) and x.dtype == torch.float32 and x.shape == (3, 2)
    x[0, 0] = 100.0  # changes the mapping only, never the file
    assert np.load(path)[0, 0] == 0.0
    assert list(row_chunks(5, 2)) == [slice(0, 2), slice(2, 4), slice(4, 5)]


# --------------------------------------------------------------------------- chunked statistics


def test_standardizer_in_chunks_matches_hand_computation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scratch_module, "CHUNK_BYTES", 16)  # one row of 2 float64 a chunk
    x = torch.tensor([[1.0, 10.0], [3.0, 10.0], [5.0, 40.0], [7.0, 20.0]])
    s = Standardizer(x, channel_dim=1)  # four chunks, merged pairwise
    assert s.mean.flatten().tolist() == [4.0, 20.0]
    # population std: col 0 deviations -3,-1,1,3 -> var 5; col 1: -10,-10,20,0 -> var 150
    torch.testing.assert_close(s.std.flatten(), torch.tensor([5.0, 150.0]).double().sqrt())
    z = s(x)
    assert z.dtype == torch.float32
    torch.testing.assert_close(z[:, 0], torch.tensor([-3.0, -1.0, 1.0, 3.0]) / math.sqrt(5))
    out = torch.full((4, 2), -1.0)
    assert s(x, out=out) is out and torch.equal(out, z)


def test_standardizer_in_chunks_equals_the_full_computation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(203, 3, 4, 4, generator=g) * torch.tensor([1.0, 5.0, 0.1]).reshape(3, 1, 1)
    x += torch.tensor([100.0, -3.0, 0.5]).reshape(3, 1, 1)
    x[:, 2] = 0.25  # a constant channel: only centred
    full = Standardizer(x, channel_dim=1)
    # the full computation is today's: float64 mean and population std over all rows
    torch.testing.assert_close(full.mean, x.double().mean(dim=(0, 2, 3), keepdim=True))
    monkeypatch.setattr(scratch_module, "CHUNK_BYTES", 7 * 48 * 8)  # 7 rows: 29 chunks
    chunked = Standardizer(x, channel_dim=1)
    torch.testing.assert_close(chunked.mean, full.mean, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(chunked.std, full.std, rtol=1e-12, atol=0.0)
    assert chunked.std[0, 2].item() == 1.0
    # applying in chunks is elementwise: exactly the same numbers
    assert torch.equal(chunked(x), ((x.double() - chunked.mean) / chunked.std).float())


def _domain(train_x: torch.Tensor) -> DomainData:
    splits = {
        "train": Split.single_view(train_x, torch.arange(len(train_x)) % 2),
        "val": Split.single_view(train_x[:4], torch.tensor([0, 1, 0, 1])),
        "test": Split.single_view(train_x[:4], torch.tensor([0, 1, 0, 1])),
    }
    return DomainData("tabular", "t", ["a", "b"], splits)


def test_finiteness_check_in_chunks_names_the_first_bad_example(tiny_chunks: None) -> None:
    from cdkd_core.data.preparation import _check

    x = torch.zeros(12, 3)
    x[9, 1] = math.inf
    x[11, 0] = math.nan
    with pytest.raises(DataError, match="train split, example 9: teacher_x has NaN or infinite"):
        _check("d", _domain(x))


# --------------------------------------------------------------------------- prepare_domains

CONFIG: dict[str, Any] = {
    "domains": [{"name": "sklearn.wine", "role": "source"}],
    "train": {"device": "cpu"},
}


def _config(mode: str) -> Any:
    cfg = copy.deepcopy(CONFIG)
    cfg["train"]["out_of_core"] = mode
    return parse_config(cfg)


def test_prepare_on_disk_equals_in_memory(host, tmp_path: Path) -> None:
    memory = prepare_domains(_config("memory"), host, quiz_fraction=0.25)
    space = ScratchSpace(tmp_path / "cache", "disk")
    disk = prepare_domains(_config("disk"), host, quiz_fraction=0.25, scratch=space)
    for m, d in zip(memory, disk, strict=True):
        for split in ("train", "val", "test", "quiz"):
            a, b = getattr(m, split), getattr(d, split)
            assert not is_memory_mapped(a.teacher_x) and is_memory_mapped(b.teacher_x)
            assert b.student_x is b.teacher_x
            assert torch.equal(a.teacher_x, b.teacher_x) and torch.equal(a.y, b.y)
        torch.testing.assert_close(
            m.standardizers["teacher_x"].std, d.standardizers["teacher_x"].std
        )
    # train without the quiz (the full train's file went when it was cut), val, test, quiz
    names = sorted(p.name.split(".")[0] for p in space.directory.iterdir())
    assert names == [f"domain0-{s}-teacher_x" for s in ("quiz", "test", "train", "val")]
    space.close()
    assert not (tmp_path / "cache").exists()


def test_out_of_core_config_is_validated() -> None:
    assert parse_config(copy.deepcopy(CONFIG)).train.out_of_core == "auto"
    for bad in ({"out_of_core": "ram"}, {"out_of_core_mb": 0}):
        cfg = copy.deepcopy(CONFIG)
        cfg["train"].update(bad)
        with pytest.raises(ConfigError, match=f"train.{next(iter(bad))}"):
            parse_config(cfg)


# --------------------------------------------------------------------------- teacher outputs


def test_teacher_outputs_and_knowledge_on_disk_equal_those_in_memory(
    host, tmp_path: Path, tiny_chunks: None
) -> None:
    config = _config("disk")
    space = ScratchSpace(tmp_path / "cache", "disk")
    (d,) = prepare_domains(config, host, scratch=space)
    teacher = build_network(config.teacher, [d], host, "teacher", seed=0)
    cache = TeacherCache(space)
    out = cache.outputs(teacher, d, "train", "trunk", 16, torch.device("cpu"))
    features, logits = read_features(
        teacher, "trunk", d.train.teacher_x, d.space, d.task, 16, torch.device("cpu")
    )
    assert is_memory_mapped(out.features) and is_memory_mapped(out.logits)
    assert torch.equal(out.features, features) and torch.equal(out.logits, logits)
    assert cache.outputs(teacher, d, "train", "trunk", 16, torch.device("cpu")).features is (
        out.features
    )
    assert (cache.hits, cache.misses) == (1, 1)
    # knowledge vectors, chunk by chunk (64-byte chunks: a row of 256 float64 each)
    encoder = PCAEncoder.from_params({"dim": 3})
    outputs = extract_knowledge(teacher, [d], encoder, "trunk", cache, 16, torch.device("cpu"))
    knowledge = outputs[d.name].knowledge
    assert is_memory_mapped(knowledge)
    torch.testing.assert_close(knowledge, encoder.transform(features, d.name), rtol=0, atol=1e-5)
    # a new teacher state drops the entries and deletes their files
    names = sorted(p.name for p in space.directory.iterdir())
    assert any("-trunk-features." in n for n in names) and any("knowledge-" in n for n in names)
    with torch.no_grad():
        next(teacher.parameters()).add_(1.0)
    cache.outputs(teacher, d, "val", "trunk", 16, torch.device("cpu"))
    left = sorted(p.name for p in space.directory.iterdir())
    assert not any(n.startswith("teacher-sklearn.wine-train") for n in left)
    space.close()


def test_auto_sends_large_teacher_features_to_disk(host, tmp_path: Path) -> None:
    config = _config("auto")
    (d,) = prepare_domains(config, host)
    teacher = build_network(config.teacher, [d], host, "teacher", seed=0)
    width = config.teacher.trunk.params["width"]  # the default teacher trunk
    threshold = len(d.train) * width * 4 / 2**20
    for mb, mapped in ((threshold, False), (threshold * 0.99, True)):
        space = ScratchSpace(tmp_path / str(mb), "auto", threshold_mb=mb)
        out = TeacherCache(space).outputs(teacher, d, "train", "trunk", 64, torch.device("cpu"))
        assert out.features.shape == (len(d.train), width)
        assert is_memory_mapped(out.features) is mapped
        space.close()


# --------------------------------------------------------------------------- whole runs


def test_a_run_on_disk_gives_the_numbers_of_a_run_in_memory(
    tiny_config: dict[str, Any], host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    empty = ScratchSpace.empty

    def recording(self: ScratchSpace, name: str, *args: Any) -> torch.Tensor:
        made.append(name)
        return empty(self, name, *args)

    monkeypatch.setattr(ScratchSpace, "empty", recording)
    summaries = {}
    for mode in ("memory", "disk"):
        cfg = copy.deepcopy(tiny_config)
        cfg["train"]["out_of_core"] = mode
        cfg["feedback"] = {"name": "hard_examples", "params": {"rounds": 2, "epochs": 1}}
        result = run_pipeline(cfg, output=tmp_path / mode, host=host)
        assert not (result.run_dir / "cache").exists()  # the scratch files are gone
        summaries[mode] = result.summary
    for key in ("domains", "round_results", "teacher_cache"):
        assert summaries["disk"][key] == summaries["memory"][key]
    # the memory run wrote nothing; the disk run wrote inputs, quiz, outputs and knowledge
    assert "domain1-quiz-teacher_x" in made and "knowledge-sklearn.wine" in made
    assert "teacher-sklearn.breast_cancer-train-trunk-features" in made
