"""The ``arrays`` domain: ``.npy`` files memory-mapped, checked, and run end to end."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cdkd_core.builtins.arrays import ArraysDomain
from cdkd_core.config.loading import parse_config
from cdkd_core.data.preparation import prepare_domains
from cdkd_core.data.scratch import is_memory_mapped
from cdkd_core.errors import DataError
from cdkd_core.run.runner import run_pipeline

torch.set_num_threads(1)

SIZES = {"train": 30, "val": 10, "test": 10}


def _write(root: Path, student: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """Three classes of 4-feature examples (class c centred at c along feature c)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in SIZES.items():
        y = np.arange(n) % 3
        x = rng.normal(size=(n, 4)).astype(np.float32)
        x[np.arange(n), y] += 4.0
        arrays[f"{split}_x"], arrays[f"{split}_y"] = x, y
        if student:
            arrays[f"{split}_student_x"] = x[:, :2].copy()
    for name, array in arrays.items():
        np.save(root / f"{name}.npy", array)
    return arrays


def _load(root: Path, **params: Any):
    return ArraysDomain.from_params({"path": str(root), **params}).load(seed=0)


def test_arrays_are_memory_mapped_not_copied(tmp_path: Path) -> None:
    arrays = _write(tmp_path / "data")
    data = _load(tmp_path / "data")
    digest = hashlib.sha1(str((tmp_path / "data").resolve()).encode()).hexdigest()[:8]
    assert data.task == data.input_space == f"arrays.data.{digest}"
    assert data.classes == ["0", "1", "2"] and data.modality == "tabular"
    for split, n in SIZES.items():
        s = data.splits[split]
        assert len(s) == n and s.student_x is s.teacher_x
        assert is_memory_mapped(s.teacher_x) and s.teacher_x.dtype == torch.float32
        np.testing.assert_array_equal(s.teacher_x.numpy(), arrays[f"{split}_x"])
        assert s.y.dtype == torch.int64 and s.y.tolist() == arrays[f"{split}_y"].tolist()


def test_student_view_and_params(tmp_path: Path) -> None:
    arrays = _write(tmp_path / "d", student=True)
    data = _load(
        tmp_path / "d",
        classes=["a", "b", "c", "d"],
        task="t",
        input_space="s",
        metrics=["f1_macro"],
        modality="series",
        channel_dim=-1,
    )
    assert (data.task, data.input_space, data.classes) == ("t", "s", ["a", "b", "c", "d"])
    assert data.metrics == ["f1_macro"] and data.modality == "series" and data.channel_dim == -1
    s = data.splits["val"]
    assert s.student_x.shape == (10, 2) and is_memory_mapped(s.student_x)
    np.testing.assert_array_equal(s.student_x.numpy(), arrays["val_student_x"])


def _expect(tmp_path: Path, match: str, **params: Any) -> None:
    with pytest.raises(DataError, match=match):
        _load(tmp_path / "d", **params)


def test_errors_name_the_file(tmp_path: Path) -> None:
    root = tmp_path / "d"
    with pytest.raises(DataError, match="no such directory"):
        _load(root)
    arrays = _write(root)
    (root / "val_y.npy").unlink()
    _expect(tmp_path, r"d/val_y\.npy: file not found")
    _write(root)
    np.save(root / "test_x.npy", arrays["test_x"][:9])
    _expect(tmp_path, r"test_x\.npy: 9 examples, but test_y\.npy has 10 labels")
    np.save(root / "test_x.npy", arrays["test_x"][:, :3])
    _expect(tmp_path, r"test_x\.npy: examples of shape \(3,\), but train_x\.npy has \(4,\)")
    np.save(root / "test_x.npy", arrays["test_x"][:, 0])
    _expect(tmp_path, r"test_x\.npy: inputs must have a row per example .* shape \(10,\)")
    np.save(root / "test_x.npy", np.zeros((0, 4), dtype=np.float32))
    _expect(tmp_path, r"test_x\.npy: holds no examples")
    np.save(root / "test_x.npy", arrays["test_x"].astype(np.complex64))
    _expect(tmp_path, r"test_x\.npy: inputs of dtype <c8 are not supported")
    np.save(root / "test_x.npy", np.array([{"a": 1}] * 10, dtype=object).reshape(10, 1))
    _expect(tmp_path, r"test_x\.npy: not a readable \.npy array")
    (root / "test_x.npy").write_text("not numpy")
    _expect(tmp_path, r"test_x\.npy: not a readable \.npy array")
    _write(root)
    np.save(root / "train_y.npy", arrays["train_y"].reshape(-1, 1))
    _expect(tmp_path, r"train_y\.npy: labels must be one integer per example")
    np.save(root / "train_y.npy", arrays["train_y"].astype(np.float32))
    _expect(tmp_path, r"train_y\.npy: labels must be integer class indices, got dtype float32")
    np.save(root / "train_y.npy", np.zeros(30, dtype=np.int64))
    _expect(tmp_path, r"train_y\.npy: the labels hold a single class")
    _write(root)
    y = arrays["val_y"].copy()
    y[7] = 3
    np.save(root / "val_y.npy", y)
    _expect(tmp_path, r"val_y\.npy: label 3 of example 7 is outside 0\.\.2 \(classes 0\.\.2, from")
    _expect(
        tmp_path,
        r"train_y\.npy: label 2 of example 2 is outside 0\.\.1 \(the 2 classes",
        classes=["a", "b"],
    )
    y[7] = -1
    np.save(root / "val_y.npy", y)
    _expect(tmp_path, r"val_y\.npy: label -1 of example 7")
    _write(root)
    _expect(tmp_path, r"train_x\.npy: channel_dim 2 is not a feature axis", channel_dim=2)
    _expect(tmp_path, r"channel_dim 0 is not a feature axis", channel_dim=0)
    np.save(root / "train_x.npy", arrays["train_x"].astype(np.float64))
    _expect(tmp_path, r"train_x\.npy: with standardize: false, .* float32", standardize=False)
    _write(root, student=True)
    (root / "test_student_x.npy").unlink()
    _expect(tmp_path, r"test_student_x\.npy: file not found")


def test_nan_inputs_are_refused_when_the_run_loads_them(tmp_path: Path, host) -> None:
    arrays = _write(tmp_path / "d")
    x = arrays["train_x"].copy()
    x[12, 3] = np.nan
    np.save(tmp_path / "d" / "train_x.npy", x)
    config = parse_config(
        {"domains": [{"name": "arrays", "params": {"path": str(tmp_path / "d")}}]}
    )
    with pytest.raises(DataError, match="'arrays': train split, example 12: teacher_x has NaN"):
        prepare_domains(config, host)


def test_prepared_arrays_stay_out_of_memory(tmp_path: Path, host) -> None:
    arrays = _write(tmp_path / "d")
    config = parse_config(
        {"domains": [{"name": "arrays", "params": {"path": str(tmp_path / "d")}}]}
    )
    (d,) = prepare_domains(config, host)  # auto: memory-mapped inputs -> standardised on disk
    x = arrays["train_x"].astype(np.float64)
    expected = (x - x.mean(0)) / x.std(0)
    assert is_memory_mapped(d.train.teacher_x) and d.train.teacher_x.dtype == torch.float32
    np.testing.assert_allclose(d.train.teacher_x.numpy(), expected, rtol=1e-5, atol=1e-6)
    memory = copy.deepcopy(config.model_dump())
    memory["train"]["out_of_core"] = "memory"
    (m,) = prepare_domains(parse_config(memory), host)
    assert not is_memory_mapped(m.train.teacher_x)
    assert torch.equal(m.train.teacher_x, d.train.teacher_x)


def test_a_run_on_arrays(tmp_path: Path, tiny_config: dict[str, Any], host) -> None:
    _write(tmp_path / "d")
    cfg = copy.deepcopy(tiny_config)
    cfg["domains"] = [
        {"name": "sklearn.wine", "role": "source"},
        {"name": "arrays", "role": "source", "params": {"path": str(tmp_path / "d")}},
    ]
    result = run_pipeline(cfg, output=tmp_path / "runs", host=host)
    arrays = result.summary["domains"]["arrays"]
    assert arrays["sizes"] == {"train": 30, "labelled": 30, "test": 10}
    assert arrays["teacher"] > 0.5  # three well-separated classes
    assert not (result.run_dir / "cache").exists()
    # the test inputs, given back as a .npy file, get the run's own test predictions
    from cdkd_core import load_student
    from cdkd_core.files import load_weights

    predictions = load_student(result.run_dir, host=host).predict(
        tmp_path / "d" / "test_x.npy", domain="arrays", chunk_size=3
    )
    logits = load_weights(result.run_dir / "predictions.safetensors")["arrays/student"]
    np.testing.assert_allclose(
        predictions.probabilities, torch.softmax(logits, dim=1).numpy(), atol=2e-6
    )
    assert predictions.ids == [str(i) for i in range(10)]
    np.save(tmp_path / "wrong.npy", np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(DataError, match=r"wrong.npy: examples of shape \(3,\)"):
        load_student(result.run_dir, host=host).predict(tmp_path / "wrong.npy", domain="arrays")
