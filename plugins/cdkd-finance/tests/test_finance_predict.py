"""Raw input for ``cdkd predict``: each finance domain's reader encodes raw rows exactly as
its ``load`` encoded the training rows (same columns, fills, categories, common mapping,
windows), so a run's test rows written back as files give the run's own test predictions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cdkd_finance.credit import CreditCSV, CreditData, Default, GermanCredit
from cdkd_finance.price_csv import PriceCSV

from cdkd_core import load_student, run_pipeline
from cdkd_core.plugin_api import (
    DataError,
    InputOptions,
    cap_examples,
    stratified_split_indices,
)
from cdkd_core.testing import invoke_cli, tiny_pipeline_config

CREDIT = {"schema": "common", "max_examples": 300}
WINDOW = {"window": 5, "vol_window": 5}


def _loans(path: Path, n: int = 150) -> Path:
    """A user's loans: numbers with missing cells, a category, a label."""
    rng = np.random.default_rng(1)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=";")
        w.writerow(["salary", "job", "months", "owner", "status"])
        for i in range(n):
            salary = "" if i % 11 == 0 else f"{rng.lognormal(7, 0.5):.2f}"
            job = ["fixed", "freelance", "parttime", "NA"][i % 4]
            months = f"{rng.integers(6, 60)}"
            risk = (salary == "") + (job == "freelance") + rng.normal(0, 0.7)
            w.writerow(
                [salary, job, months, "yes" if i % 3 else "no", "bad" if risk > 0.8 else "ok"]
            )
    return path


def _csv_params(path: Path, schema: str = "own") -> dict:
    params = {"path": str(path), "label": "status", "positive": "bad", "delimiter": ";"}
    if schema == "common":
        mapping = {"income": "salary", "duration_months": "months", "home_own": "owner"}
        params.update(schema="common", common=mapping)
    return params


def _source_test_rows(cls, params: dict, path: Path) -> Path:
    """The source's test split written back as its own raw CSV (label column kept)."""
    frame, y = cls().frame()
    keep = cap_examples(y, params.get("max_examples"), 0)
    frame = frame.iloc[keep].reset_index(drop=True)
    index = stratified_split_indices(y[keep], 0.2, 0.2, 0)
    rows = frame.iloc[index["test"]].assign(label=np.where(y[keep][index["test"]], "bad", "good"))
    rows[list(reversed(rows.columns))].to_csv(path, index=False)  # columns reordered
    return path


def _csv_test_rows(source: Path, params: dict, path: Path) -> Path:
    """The user CSV's test rows, as the same kind of CSV (comma-delimited this time)."""
    domain = CreditCSV.from_params(params)
    fitted, _ = domain._fitted()
    with source.open(encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter=";"))
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["loan", *rows[0]])
        w.writerows([f"L{i}", *rows[i + 1]] for i in fitted.index["test"])
    return path


def _expected(student, name: str, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(student.student.domain_module(name)(x), dim=1).numpy()


@pytest.fixture
def finance_run(finance_host, tmp_path, write_prices):
    loans = _loans(tmp_path / "loans.csv")
    prices = write_prices(tmp_path / "prices.csv", days=140)
    config = tiny_pipeline_config()
    config["domains"] = [
        {"name": "finance.credit_data", "role": "source", "params": CREDIT},
        {"name": "finance.credit_csv", "role": "source", "params": _csv_params(loans)},
        {"name": "finance.price_csv", "role": "source", "params": {"path": str(prices), **WINDOW}},
    ]
    result = run_pipeline(config, host=finance_host, output=tmp_path / "runs")
    return result, loans, prices


def test_credit_source_common_schema_reproduces_the_run(finance_run, finance_host, tmp_path):
    result, _, _ = finance_run
    name = "finance.credit_data"
    rows = _source_test_rows(CreditData, CREDIT, tmp_path / "applicants.csv")
    student = load_student(result.run_dir, host=finance_host)
    test = CreditData.from_params(CREDIT).load(0).splits["test"]
    expected = _expected(student, name, test.student_x)
    predictions = student.predict(rows, domain=name, chunk_size=13)
    np.testing.assert_allclose(predictions.probabilities, expected, atol=2e-6)
    # the run's own test accuracy
    labels = ["bad" if int(y) else "good" for y in test.y]
    accuracy = np.mean([p == y for p, y in zip(predictions.labels, labels, strict=True)])
    reported = result.summary["domains"][name]["metrics"]["student"]["accuracy"]
    assert accuracy == pytest.approx(reported, abs=1e-9)
    # and once through the CLI
    out = tmp_path / "predictions.jsonl"
    res = invoke_cli(
        "predict", result.run_dir, rows, "--domain", name, "--format", "jsonl", "-o", out
    )
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    written = np.array([[r["p_good"], r["p_bad"]] for r in records])
    np.testing.assert_allclose(written, expected, atol=2e-6)


def test_credit_csv_reproduces_the_run(finance_run, finance_host, tmp_path):
    result, loans, _ = finance_run
    name = "finance.credit_csv"
    params = _csv_params(loans)
    rows = _csv_test_rows(loans, params, tmp_path / "new_loans.csv")
    student = load_student(result.run_dir, host=finance_host)
    test = CreditCSV.from_params(params).load(0).splits["test"]
    predictions = student.predict(rows, domain=name, id_column="loan", delimiter=",")
    fitted, _ = CreditCSV.from_params(params)._fitted()
    assert predictions.ids == [f"L{i}" for i in fitted.index["test"]]
    np.testing.assert_allclose(
        predictions.probabilities, _expected(student, name, test.student_x), atol=2e-6
    )


def test_price_csv_windows_reproduce_the_run(finance_run, finance_host):
    """The training price file itself: its test windows give the run's test predictions,
    and the last day (no label, the one to predict from) gets a prediction too."""
    result, _, prices = finance_run
    name = "finance.price_csv"
    student = load_student(result.run_dir, host=finance_host)
    domain = PriceCSV.from_params({"path": str(prices), **WINDOW})
    test = domain.load(0).splits["test"]
    predictions = student.predict(prices, domain=name)
    dates = [line.split(",")[0] for line in prices.read_text().splitlines()[1:]]
    assert predictions.ids[-1] == dates[-1]
    probabilities = dict(zip(predictions.ids, predictions.probabilities, strict=True))
    # the test windows end on the last labelled days, the day before the last
    ends = dates[len(dates) - 1 - len(test) : -1]
    got = np.array([probabilities[d] for d in ends])
    np.testing.assert_allclose(got, _expected(student, name, test.student_x), atol=2e-6)


@pytest.mark.parametrize("schema", ["own", "common"])
@pytest.mark.parametrize("cls", [CreditData, Default, GermanCredit])
def test_source_readers_make_the_loaded_views(cls, schema, tmp_path):
    """Every built-in source, both schemas: raw test rows -> the loaded test views, the
    teacher view included (one view)."""
    params = {"schema": schema, "max_examples": 400}
    domain = cls.from_params(params)
    test = domain.load(0).splits["test"]
    rows = _source_test_rows(cls, params, tmp_path / "rows.csv")
    batches = list(domain.input_reader(0).batches(rows, InputOptions(teacher=True), 50))
    student = torch.cat([b.student_x for b in batches])
    teacher = torch.cat([b.teacher_x for b in batches])
    assert torch.equal(student, test.student_x)
    assert torch.equal(teacher, test.teacher_x)


@pytest.mark.parametrize("schema", ["own", "common"])
def test_credit_csv_reader_makes_the_loaded_views(schema, tmp_path):
    loans = _loans(tmp_path / "loans.csv")
    params = _csv_params(loans, schema)
    test = CreditCSV.from_params(params).load(0).splits["test"]
    rows = _csv_test_rows(loans, params, tmp_path / "rows.csv")
    reader = CreditCSV.from_params(params).input_reader(0)
    (batch,) = reader.batches(rows, InputOptions(teacher=True, delimiter=","), 1000)
    assert torch.equal(batch.student_x, test.student_x)
    assert batch.teacher_x is not None and torch.equal(batch.teacher_x, test.teacher_x)


def test_bad_raw_cells_name_file_line_and_column(tmp_path):
    rows = tmp_path / "bad.csv"
    reader = CreditData.from_params({"schema": "common"}).input_reader(0)
    rows.write_text(
        "Income,Amount,Time,Age,Seniority,Home,Records\n"
        "100,1000,12,30,2,rent,no\n"
        "lots,1000,12,30,2,owner,yes\n"
    )
    with pytest.raises(DataError, match=r"bad\.csv, line 3, column 'Income': 'lots' is not"):
        list(reader.batches(rows, InputOptions(), 10))
    rows.write_text("Income,Amount\n100,1000\n")
    with pytest.raises(DataError, match=r"'Seniority', 'Home', 'Records'\] not in"):
        list(reader.batches(rows, InputOptions(), 10))
    loans = _loans(tmp_path / "loans.csv")
    reader = CreditCSV.from_params(_csv_params(loans, "common")).input_reader(0)
    rows.write_text("salary;months;owner\n100;12;maybe\n")
    with pytest.raises(DataError, match=r"bad\.csv, line 2: column 'owner' \(mapped to home_own"):
        list(reader.batches(rows, InputOptions(), 10))
    reader = CreditCSV.from_params(_csv_params(loans)).input_reader(0)
    rows.write_text("salary;job;months;owner\n100;fixed;soon;yes\n")
    with pytest.raises(DataError, match=r"bad\.csv, line 2, column 'months': 'soon' is not"):
        list(reader.batches(rows, InputOptions(), 10))


def test_sp500_reads_a_price_file_into_the_loaded_windows(tmp_path):
    """The index's own series written as a price CSV: its last labelled windows are the
    loaded test split's (the windows do not depend on where the file starts, once a window
    and its look-back fit)."""
    from cdkd_finance.sp500 import SP500, sp500_prices

    params = {"max_examples": 200, "window": 10, "vol_window": 5}
    test = SP500.from_params(params).load(0).splits["test"]
    dates, prices = sp500_prices("arch")
    path = tmp_path / "spx.csv"
    keep = slice(len(dates) - 400, None)  # the last 400 days are enough
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["date", "close", "high", "low", "volume"])
        columns = [prices[k][keep] for k in ("close", "high", "low", "volume")]
        for day, *values in zip(dates[keep], *columns, strict=True):
            w.writerow([day.date().isoformat(), *(repr(float(v)) for v in values)])
    batches = list(SP500.from_params(params).input_reader(0).batches(path, InputOptions(), 64))
    x = torch.cat([b.student_x for b in batches])
    ids = [i for b in batches for i in b.ids]
    assert ids[-1] == dates[-1].date().isoformat()
    assert torch.equal(x[-1 - len(test) : -1], test.student_x)
