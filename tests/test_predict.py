"""``cdkd predict`` and ``load_student(run).predict``: raw input in, the run's own
predictions out."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cdkd_core.components.raw_input import InputOptions
from cdkd_core.data.raw_input import TableReader, TextReader, csv_chunks, numeric_columns
from cdkd_core.data.tabular import TabularEncoder, read_csv
from cdkd_core.errors import DataError


def _loans_csv(path: Path, rows: int = 240) -> Path:
    """A table with numeric, categorical and missing cells whose label depends on them."""
    rng = np.random.default_rng(0)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["income", "job", "age", "default"])
        for i in range(rows):
            income = rng.normal(50, 15)
            job = ["clerk", "nurse", "farmer"][i % 3]
            age = "" if i % 17 == 0 else f"{rng.integers(20, 70)}"
            risk = -0.05 * (income - 50) + (1.0 if job == "farmer" else 0.0) + rng.normal(0, 0.5)
            w.writerow([f"{income:.2f}", job, age, "yes" if risk > 0.4 else "no"])
    return path


@pytest.fixture
def loans_run(tmp_path, tiny_config, run_tiny_pipeline):
    """A finished tiny run whose first domain is the user's CSV (a ``tabular`` domain)."""
    data = _loans_csv(tmp_path / "loans.csv")
    tiny_config["domains"][0] = {
        "name": "tabular",
        "alias": "loans",
        "role": "source",
        "params": {"path": str(data), "label": "default"},
    }
    result = run_tiny_pipeline(tiny_config)
    return result, data


def _test_rows(data: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """The CSV rows of the loans domain's test split, columns reordered, label kept."""
    from cdkd_core.builtins.domains import TabularCSV

    domain = TabularCSV.from_params({"path": str(data), "label": "default"})
    table, _, index, _, _ = domain._fitted()
    out = tmp_path / "new_loans.csv"
    order = ["default", "age", "job", "income"]
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["loan_id", *order])
        for i in index["test"]:
            row = dict(zip(table.header, table.rows[i], strict=True))
            w.writerow([f"L{i}", *(row[c] for c in order)])
    labels = [table.rows[i][table.header.index("default")] for i in index["test"]]
    return out, labels


def test_cli_predict_gives_the_runs_own_test_predictions(loans_run, tmp_path, cdkd_cli):
    """The run's test rows, fed back as raw CSV (label present, columns reordered), give the
    student's own test-split probabilities and its reported accuracy."""
    from cdkd_core import load_student
    from cdkd_core.builtins.domains import TabularCSV

    result, data = loans_run
    rows, labels = _test_rows(data, tmp_path)
    out = tmp_path / "predictions.csv"
    res = cdkd_cli(
        "predict", str(result.run_dir), str(rows), "--domain", "loans", "--id-column",
        "loan_id", "-o", str(out), "--chunk-size", "7",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    with out.open(encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    student = load_student(result.run_dir)
    classes = student.classes("loans")
    assert list(written[0]) == ["id", "prediction", *(f"p_{c}" for c in classes)]
    probabilities = np.array([[float(r[f"p_{c}"]) for c in classes] for r in written])
    # the run's own test-split logits (predictions.safetensors), in the test split's order
    from cdkd_core.files import load_weights

    logits = load_weights(result.run_dir / "predictions.safetensors")["loans/student"]
    expected = torch.softmax(logits.float(), dim=1).numpy()
    np.testing.assert_allclose(probabilities, expected, atol=2e-6)
    domain = TabularCSV.from_params({"path": str(data), "label": "default"})
    accuracy = np.mean([r["prediction"] == y for r, y in zip(written, labels, strict=True)])
    reported = result.summary["domains"]["loans"]["metrics"]["student"]["accuracy"]
    assert accuracy == pytest.approx(reported, abs=1e-9)
    assert [r["id"] for r in written][:2] == [f"L{i}" for i in domain._fitted()[2]["test"][:2]]


def test_python_predict_matches_the_cli_and_reads_jsonl_output(loans_run, tmp_path, cdkd_cli):
    from cdkd_core import load_student

    result, data = loans_run
    rows, _ = _test_rows(data, tmp_path)
    predictions = load_student(result.run_dir).predict(rows, domain="loans")
    assert predictions.probabilities.shape == (len(predictions.ids), 2)
    np.testing.assert_allclose(predictions.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    res = cdkd_cli(
        "predict", str(result.run_dir / "export"), str(rows), "-d", "loans", "--format", "jsonl"
    )  # an export folder inside its run resolves to the run
    assert res.exit_code != 0 and "summary.json" not in res.stdout  # no export/ yet
    res = cdkd_cli("predict", str(result.run_dir), str(rows), "-d", "loans", "--format", "jsonl")
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["prediction"] for r in records] == predictions.labels
    assert [r["id"] for r in records] == predictions.ids  # line numbers by default


def test_predict_errors_are_one_line_and_write_nothing(loans_run, tmp_path, cdkd_cli):
    result, _ = loans_run
    bad = tmp_path / "bad.csv"
    bad.write_text("income,job\n40,clerk\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    res = cdkd_cli("predict", str(result.run_dir), str(bad), "-d", "loans", "-o", str(out))
    assert res.exit_code == 2
    assert "feature column(s) ['age'] not in the header" in res.stderr
    assert "Traceback" not in res.output and not out.exists()
    res = cdkd_cli("predict", str(result.run_dir), str(bad), "-d", "loans")
    assert res.exit_code == 2 and res.stdout == ""  # standard output: not even a header
    cells = tmp_path / "cells.csv"
    cells.write_text("income,job,age\n40,clerk,old\n41,nurse,30\n", encoding="utf-8")
    res = cdkd_cli("predict", str(result.run_dir), str(cells), "-d", "loans", "-o", str(out))
    assert res.exit_code == 2 and "line 2, column 'age'" in res.stderr, res.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.csv*"))
    res = cdkd_cli("predict", str(result.run_dir), str(cells))
    assert res.exit_code == 2 and "name one with --domain: loans, sklearn.breast_cancer" in (
        res.stderr
    )
    res = cdkd_cli("predict", str(result.run_dir), str(cells), "-d", "nope")
    assert res.exit_code == 2 and "no domain 'nope' in the run" in res.stderr


def test_sklearn_domain_reads_its_feature_columns(loans_run, tmp_path):
    """A built-in scikit-learn domain reads a CSV of its feature_names."""
    import sklearn.datasets

    from cdkd_core import load_student

    result, _ = loans_run
    bunch = sklearn.datasets.load_breast_cancer()
    path = tmp_path / "fna.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(bunch.feature_names)
        w.writerows(bunch.data[:5].tolist())
    predictions = load_student(result.run_dir).predict(path, domain="sklearn.breast_cancer")
    assert predictions.ids == ["2", "3", "4", "5", "6"]
    student = load_student(result.run_dir).student.domain_module("sklearn.breast_cancer")
    with torch.no_grad():
        x = torch.as_tensor(bunch.data[:5], dtype=torch.float32)
        expected = torch.softmax(student(x), dim=1).numpy()
    np.testing.assert_allclose(predictions.probabilities, expected, atol=1e-6)


def test_csv_chunks_stream_with_line_numbers(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a;b\n1;2\n\n3;4\n5;6\n", encoding="utf-8")
    chunks = list(csv_chunks(path, chunk_size=2))
    assert [c.rows for c in chunks] == [[["1", "2"], ["3", "4"]], [["5", "6"]]]
    assert [c.lines for c in chunks] == [[2, 4], [5]]
    path.write_text("a,b\n1,2\n3\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 3: 1 fields, the header has 2"):
        list(csv_chunks(path))
    path.write_text("a,b\n", encoding="utf-8")
    with pytest.raises(DataError, match="no data rows"):
        list(csv_chunks(path))
    path.write_text("a,b\n1,2\n3,4\n", encoding="utf-8")
    assert TableReader(["a"], lambda t: np.zeros((len(t.rows), 1))).count(path, None) == 2
    utf16 = tmp_path / "u.csv"
    utf16.write_text("a,b\n1,2\n", encoding="utf-16")
    assert next(csv_chunks(utf16)).rows == [["1", "2"]]


def test_encoder_encodes_new_rows_with_fitted_state(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("x,c\n1,a\n3,b\n,a\n100,z\n", encoding="utf-8")
    table = read_csv(train)
    encoder = TabularEncoder(["x", "c"]).fit(table, np.array([0, 1, 2]))
    new = tmp_path / "new.csv"
    new.write_text("c,x,label\nb,5,yes\nq,,no\na,NA,no\n", encoding="utf-8")
    x = encoder.encode(read_csv(new))
    # median of the train rows' x (1, 3) is 2; categories a, b; q unseen -> all zero
    np.testing.assert_array_equal(x, [[5, 0, 1], [2, 0, 0], [2, 1, 0]])
    new.write_text("c,x\nb,five\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2, column 'x': 'five' is not a number"):
        encoder.encode(read_csv(new))


def test_numeric_columns_and_text_reader_formats(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text("a,b\n1,2\nx,inf\n", encoding="utf-8")
    with pytest.raises(DataError, match="2 problems") as err:
        numeric_columns(read_csv(path), ["a", "b"])
    assert "line 3, column 'a'" in str(err.value) and "line 3, column 'b'" in str(err.value)

    def encode(texts, teacher):
        return torch.tensor([[len(t)] for t in texts]), None

    reader = TextReader(encode)
    plain = tmp_path / "t.txt"
    plain.write_text("good\n\nbad one\n", encoding="utf-8")
    batches = list(reader.batches(plain, InputOptions(), 1))
    assert [b.ids for b in batches] == [["1"], ["3"]]
    assert [int(b.student_x[0, 0]) for b in batches] == [4, 7]
    lines = tmp_path / "t.jsonl"
    lines.write_text('{"id": 7, "body": "abc"}\n{"id": 8, "body": "de"}\n', encoding="utf-8")
    (batch,) = reader.batches(lines, InputOptions(column="body", id_column="id"), 10)
    assert batch.ids == ["7", "8"] and batch.student_x[:, 0].tolist() == [3, 2]
    with pytest.raises(DataError, match=r"t.jsonl, line 1: no key 'text'"):
        list(reader.batches(lines, InputOptions(), 10))
    table = tmp_path / "t.csv"
    table.write_text("id,review\n1,fine\n", encoding="utf-8")
    with pytest.raises(DataError, match="no text column 'text'"):
        list(reader.batches(table, InputOptions(), 10))
    (batch,) = reader.batches(table, InputOptions(column="review", id_column="id"), 10)
    assert batch.ids == ["1"] and int(batch.student_x[0, 0]) == 4
    assert reader.texts(["ab", "c"], InputOptions()).ids == ["0", "1"]


def test_teacher_predicts_raw_input_as_the_run_scored_it(tmp_path, tiny_config, run_tiny_pipeline):
    """--model teacher on a target's raw test rows: the adapted head and the target's prior
    as the run used them, so the accuracy is the run's reported teacher accuracy."""
    data = _loans_csv(tmp_path / "loans.csv")
    tiny_config["domains"].append(
        {
            "name": "tabular",
            "alias": "loans",
            "role": "target",
            "label_fraction": 0.3,
            "params": {"path": str(data), "label": "default"},
        }
    )
    tiny_config["domains"][0] = {
        "name": "tabular",
        "alias": "loans_source",
        "role": "source",
        "params": {"path": str(data), "label": "default", "split_seed": 5},
    }  # the same file and so the same input space and task: the teacher reads the target
    result = run_tiny_pipeline(tiny_config)
    assert result.summary["domains"]["loans"]["adaptation"]
    rows, labels = _test_rows(data, tmp_path)
    from cdkd_core import load_teacher

    predictions = load_teacher(result.run_dir).predict(rows, domain="loans", id_column="loan_id")
    from cdkd_core.files import load_weights

    logits = load_weights(result.run_dir / "predictions.safetensors")["loans/teacher"]
    expected = torch.softmax(logits.double(), dim=1).numpy()
    np.testing.assert_allclose(predictions.probabilities, expected, atol=1e-5)
    accuracy = np.mean([p == y for p, y in zip(predictions.labels, labels, strict=True)])
    reported = result.summary["domains"]["loans"]["metrics"]["teacher"]["accuracy"]
    assert accuracy == pytest.approx(reported, abs=1e-9)
