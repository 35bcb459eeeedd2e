"""The ``tabular`` domain on CSV files: delimiters, encoding, imputation, errors, splits."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch

import cdkd_core.builtins.domains as domains_module
from cdkd_core.builtins.domains import TabularCSV
from cdkd_core.components.domain import DomainData
from cdkd_core.data.tabular import TabularEncoder, read_csv
from cdkd_core.errors import DataError

torch.set_num_threads(1)


def _write(path: Path, header: list[str], rows: list[list[object]], delimiter: str = ",") -> Path:
    lines = [delimiter.join(header)] + [delimiter.join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _load(path: Path, **params) -> DomainData:
    return TabularCSV.from_params({"path": str(path), "label": "label", **params}).load(seed=0)


def _ids(data: DomainData, split: str) -> list[int]:
    """The ``id`` feature (column 0) of a split, as ints."""
    return [round(v) for v in data.splits[split].teacher_x[:, 0].tolist()]


def _simple_rows(n: int = 30) -> list[list[object]]:
    return [[i, i * 0.5 - 3, "yes" if i % 3 == 0 else "no"] for i in range(n)]


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiters_are_sniffed(tmp_path: Path, delimiter: str) -> None:
    path = _write(tmp_path / "t.csv", ["id", "x", "label"], _simple_rows(), delimiter)
    table = read_csv(path)
    assert table.header == ["id", "x", "label"]
    assert len(table.rows) == 30
    assert table.rows[4] == ["4", "-1.0", "no"]
    data = _load(path)
    assert data.splits["train"].teacher_x.shape[1] == 2
    assert sum(len(s) for s in data.splits.values()) == 30


def test_semicolon_file_with_decimal_commas_in_quotes(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    rows = [f'{i};"{i},5";{"a" if i % 2 else "b"}' for i in range(20)]
    path.write_text("id;price;label\n" + "\n".join(rows) + "\n")
    table = read_csv(path)
    assert table.header == ["id", "price", "label"]
    assert table.rows[3] == ["3", "3,5", "a"]


def test_explicit_delimiter_wins(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", ["id", "x", "label"], _simple_rows(), ";")
    table = read_csv(path, delimiter=";")
    assert table.header == ["id", "x", "label"]
    data = _load(path, delimiter=";")
    assert data.splits["train"].teacher_x.shape[1] == 2


def test_bom_whitespace_and_blank_lines_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    text = "\ufeff id , label \n1,a\n\n2,b\n  ,  \n3,a\n"
    path.write_text(text, encoding="utf-8")
    table = read_csv(path)
    assert table.header == ["id", "label"]
    assert table.rows == [["1", "a"], ["2", "b"], ["3", "a"]]
    assert table.column("label") == ["a", "b", "a"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data file not found"):
        _load(tmp_path / "nope.csv")


@pytest.mark.parametrize("text", ["", "   \n\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        _load(path)
    assert str(path) in str(info.value)
    assert "empty" in str(info.value)
    assert info.value.exit_code == 2


def test_header_only(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("a,b,label\n")
    with pytest.raises(DataError, match="no data rows"):
        _load(path)


def test_duplicate_header(tmp_path: Path) -> None:
    path = _write(tmp_path / "dup.csv", ["a", "a", "label"], [[1, 2, "x"]] * 5)
    with pytest.raises(DataError, match="duplicate column names"):
        read_csv(path)


def test_ragged_row_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    lines = ["id,x,label"] + [f"{i},{i},{i % 2}" for i in range(10)]
    lines[6] = "5,5,1,extra"  # file line 7
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        read_csv(path)
    msg = str(info.value)
    assert f"{path}, line 7:" in msg
    assert "4 fields, the header has 3" in msg


def test_non_utf8_bytes(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"id,city,label\n1,Z\xfcrich,a\n2,Bern,b\n")
    with pytest.raises(DataError) as info:
        _load(path)
    assert str(path) in str(info.value)
    assert "not UTF-8" in str(info.value)


def test_quoted_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "quoted.csv"
    path.write_text('note,label\n"line one\nline two",a\nplain,b\n')
    table = read_csv(path, delimiter=",")
    assert table.rows[0] == ["line one\nline two", "a"]


# --------------------------------------------------------------------------- labels


def test_missing_label_column_lists_the_columns(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", ["id", "x", "target"], _simple_rows())
    with pytest.raises(DataError) as info:
        _load(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "no label column 'label'" in msg
    assert "['id', 'x', 'target']" in msg


def test_unknown_feature_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", ["id", "x", "label"], _simple_rows())
    with pytest.raises(DataError, match=r"feature column\(s\) \['z'\]"):
        _load(path, features=["id", "z"])


def test_label_listed_as_feature_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match="also listed in features"):
        TabularCSV.Config.model_validate({"path": "x.csv", "label": "y", "features": ["a", "y"]})


def test_missing_label_value_names_the_line(tmp_path: Path) -> None:
    rows = _simple_rows()
    rows[4][2] = "NA"  # file line 6
    path = _write(tmp_path / "t.csv", ["id", "x", "label"], rows)
    with pytest.raises(DataError) as info:
        _load(path)
    assert f"{path}, line 6: label 'label' is missing" in str(info.value)


def test_infinite_value_names_the_line(tmp_path: Path) -> None:
    rows = _simple_rows()
    rows[9][1] = "-inf"  # file line 11
    path = _write(tmp_path / "t.csv", ["id", "x", "label"], rows)
    with pytest.raises(DataError) as info:
        _load(path)
    assert f"{path}, line 11, column 'x': '-inf' is infinite" in str(info.value)


@pytest.mark.parametrize(
    ("column", "value", "fragment"), [(1, "inf", "is infinite"), (2, "", "is missing")]
)
def test_line_numbers_count_blank_lines(
    tmp_path: Path, column: int, value: str, fragment: str
) -> None:
    lines = ["id,x,label", ""] + [f"{i},{i},{'a' if i % 2 else 'b'}" for i in range(20)]
    cells = lines[9].split(",")
    cells[column] = value
    lines[9] = ",".join(cells)  # file line 10 (after the header and a blank line)
    path = tmp_path / "blank.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        _load(path)
    assert f"{path}, line 10" in str(info.value)
    assert fragment in str(info.value)


def test_class_only_outside_train_names_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [[i, i, "a" if i % 2 else "b"] for i in range(20)]
    rows[13][2] = "rare"  # file line 15
    path = _write(tmp_path / "t.csv", ["id", "x", "label"], rows)
    real = domains_module.stratified_split_indices

    def rare_in_test(labels, val_fraction, test_fraction, seed):
        parts = real(labels, val_fraction, test_fraction, seed)
        train = parts["train"][parts["train"] != 13]
        test = np.sort(np.concatenate([parts["test"][parts["test"] != 13], [13]]))
        return {"train": train, "val": parts["val"], "test": test}

    monkeypatch.setattr(domains_module, "stratified_split_indices", rare_in_test)
    with pytest.raises(DataError) as info:
        _load(path)
    msg = str(info.value)
    assert f"{path}, line 15:" in msg
    assert "'rare'" in msg
    assert "test split but never in train" in msg


def test_classes_come_from_train_and_labels_are_indices(tmp_path: Path) -> None:
    rows = [[i, i, ["cat", "dog", "emu"][i % 3]] for i in range(30)]
    path = _write(tmp_path / "animals.csv", ["id", "x", "label"], rows)
    data = _load(path)
    assert data.classes == ["cat", "dog", "emu"]
    for split in data.splits.values():
        ids = split.teacher_x[:, 0].round().long()
        assert torch.equal(split.y, ids % 3)


# --------------------------------------------------------------------------- encoding


def _mixed_rows(n: int = 40) -> list[list[object]]:
    colors = ["red", "green", "blue"]
    return [[i, colors[i % 3], (i * 7) % 11, "a" if i % 2 else "b"] for i in range(n)]


def test_categorical_columns_are_one_hot_with_train_categories(tmp_path: Path) -> None:
    header = ["id", "color", "size", "label"]
    first = _load(_write(tmp_path / "v1.csv", header, _mixed_rows()))
    test_ids = _ids(first, "test")
    # a category seen only in one test row, and only the split is decided by labels
    rows = _mixed_rows()
    rows[test_ids[0]][1] = "purple"
    data = _load(_write(tmp_path / "v2.csv", header, rows))
    assert _ids(data, "test") == test_ids
    x_all = torch.cat([s.teacher_x for s in data.splits.values()])
    ids = x_all[:, 0].round().long().tolist()
    # id, color=blue, color=green, color=red, size
    assert x_all.shape[1] == 5
    for row, i in zip(x_all.tolist(), ids, strict=True):
        expected_color = [0.0, 0.0, 0.0]
        color = rows[i][1]
        if color != "purple":
            expected_color[["blue", "green", "red"].index(color)] = 1.0
        assert row[1:4] == expected_color
        assert row[4] == float(rows[i][2])


def test_missing_category_gets_its_own_column(tmp_path: Path) -> None:
    rows = _mixed_rows()
    for i in range(0, 40, 4):
        rows[i][1] = "?"
    data = _load(_write(tmp_path / "t.csv", ["id", "color", "size", "label"], rows))
    x = torch.cat([s.teacher_x for s in data.splits.values()])
    # id, color=<missing>, color=blue, color=green, color=red, size
    assert x.shape[1] == 6
    ids = x[:, 0].round().long()
    assert torch.equal(x[:, 1] == 1, ids % 4 == 0)
    assert torch.allclose(x[:, 1:5].sum(1), torch.ones(len(x)))


def test_missing_numbers_are_imputed_with_the_train_median(tmp_path: Path) -> None:
    header = ["id", "v", "label"]
    rows = [[i, float(i * i % 17), "a" if i % 2 else "b"] for i in range(40)]
    first = _load(_write(tmp_path / "v1.csv", header, rows))
    train_ids = _ids(first, "train")
    val_ids, test_ids = _ids(first, "val"), _ids(first, "test")
    missing = {train_ids[0], val_ids[0], test_ids[0], test_ids[1]}
    for i in missing:
        rows[i][1] = ["", "NA", "nan", "null"][i % 4]
    data = _load(_write(tmp_path / "v2.csv", header, rows))
    observed_train = [rows[i][1] for i in train_ids if i not in missing]
    median = float(np.median(observed_train))
    # the median over all rows differs, so this checks that only train rows are used
    all_observed = [r[1] for j, r in enumerate(rows) if j not in missing]
    assert median != float(np.median(all_observed))
    for split in ("train", "val", "test"):
        x = data.splits[split].teacher_x
        for row_id, value in zip(_ids(data, split), x[:, 1].tolist(), strict=True):
            expected = median if row_id in missing else rows[row_id][1]
            assert value == pytest.approx(expected), (split, row_id)


def test_tabular_encoder_feature_names(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", ["n", "c", "label"], [[1, "x", 0], [2, "", 1], [3, "y", 0]])
    table = read_csv(path)
    encoder = TabularEncoder(["n", "c"]).fit(table, np.array([0, 1]))
    assert encoder.feature_names == ["n", "c=<missing>", "c=x"]
    x = encoder.transform(table)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, [[1, 0, 1], [2, 1, 0], [3, 0, 0]])


def test_selected_features_only(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", ["id", "color", "size", "label"], _mixed_rows())
    data = _load(path, features=["size"])
    assert data.splits["train"].teacher_x.shape[1] == 1


# --------------------------------------------------------------------------- splits


def test_splits_are_disjoint_stratified_and_deterministic(tmp_path: Path) -> None:
    rows = [[i, i % 7, "pos" if i % 4 == 0 else "neg"] for i in range(100)]
    path = _write(tmp_path / "t.csv", ["id", "x", "label"], rows)
    data = _load(path, val_fraction=0.2, test_fraction=0.1)
    ids = {s: _ids(data, s) for s in ("train", "val", "test")}
    assert sorted(ids["train"] + ids["val"] + ids["test"]) == list(range(100))
    assert set(ids["train"]).isdisjoint(ids["val"])
    assert set(ids["train"]).isdisjoint(ids["test"])
    assert set(ids["val"]).isdisjoint(ids["test"])
    counts = {s: Counter(data.splits[s].y.tolist()) for s in ids}
    neg, pos = data.classes.index("neg"), data.classes.index("pos")
    assert (counts["val"][neg], counts["val"][pos]) == (15, 5)
    assert (counts["test"][neg], counts["test"][pos]) == (8, 2)  # round(7.5) == 8
    again = _load(path, val_fraction=0.2, test_fraction=0.1)
    for s in ids:
        assert torch.equal(again.splits[s].teacher_x, data.splits[s].teacher_x)
    other = _load(path, val_fraction=0.2, test_fraction=0.1, split_seed=1)
    assert _ids(other, "test") != ids["test"]
    # the run seed does not move the split
    moved = TabularCSV.from_params({"path": str(path), "label": "label"}).load(seed=5)
    assert _ids(moved, "test") == _ids(_load(path), "test")


def test_max_examples_caps_stratified(tmp_path: Path) -> None:
    rows = [[i, i, "a" if i % 4 else "b"] for i in range(100)]
    path = _write(tmp_path / "t.csv", ["id", "x", "label"], rows)
    data = _load(path, max_examples=40)
    y = torch.cat([s.y for s in data.splits.values()])
    assert len(y) == 40
    assert Counter(y.tolist()) == {data.classes.index("a"): 30, data.classes.index("b"): 10}


# --------------------------------------------------------------------------- task / space


def test_task_and_input_space_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path / "heart.csv", ["id", "x", "label"], _simple_rows())
    data = _load(path)
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    assert data.modality == "tabular"
    assert data.task == f"tabular.heart.{digest}.label"
    assert data.input_space == f"tabular.heart.{digest}"
    (tmp_path / "elsewhere").mkdir()
    other = _write(tmp_path / "elsewhere" / "heart.csv", ["id", "x", "label"], _simple_rows())
    assert _load(other).input_space != data.input_space  # same file name, other file
    assert data.metrics == ["accuracy", "f1_macro"]
    assert data.classes == ["no", "yes"]


def test_task_input_space_and_metrics_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path / "heart.csv", ["id", "x", "label"], _simple_rows())
    data = _load(path, task="cardio", input_space="clinic", metrics=["roc_auc", "accuracy"])
    assert data.task == "cardio"
    assert data.input_space == "clinic"
    assert data.metrics == ["roc_auc", "accuracy"]


# --------------------------------------------------------------------------- shared input space


def _jobs(path: Path, jobs: tuple[str, ...], columns: tuple[str, ...] = ("age", "job")) -> Path:
    rows = [[20 + i, jobs[i % len(jobs)], "ab"[i % 2]] for i in range(36)]
    return _write(path, [*columns, "label"], rows)


def _shared(*paths: Path) -> dict:
    return {
        "name": "shared",
        "domains": [
            {
                "name": "tabular",
                "alias": path.stem,
                "role": "source" if i == 0 else "target",
                "params": {"path": str(path), "label": "label", "input_space": "loans"},
            }
            for i, path in enumerate(paths)
        ],
        "teacher": {"trunk": {"name": "mlp", "params": {"width": 8, "depth": 1}}},
        "student": {"trunk": {"name": "mlp", "params": {"width": 4, "depth": 1}}},
        "encoder": {"name": "pca", "params": {"dim": 2}},
        "losses": [{"name": "ce"}],
        "train": {"epochs": 1, "device": "cpu", "threads": 1},
    }


def test_the_tabular_domain_names_its_features(tmp_path: Path) -> None:
    data = _load(_jobs(tmp_path / "a.csv", ("x", "y", "z")))
    assert data.feature_names == ["age", "job=x", "job=y", "job=z"]


def test_a_shared_input_space_with_other_categories_is_refused(tmp_path, monkeypatch) -> None:
    """x/y/z in one file, p/q/r in the other: as many one-hot features, once mixed in one
    stem silently; now one error naming both files, the column and both category lists."""
    import yaml
    from typer.testing import CliRunner

    from cdkd_core.cli import app

    a = _jobs(tmp_path / "a.csv", ("x", "y", "z"))
    b = _jobs(tmp_path / "b.csv", ("p", "q", "r"))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_shared(a, b)))
    monkeypatch.setenv("CDKD_DISABLE_PLUGINS", "medical finance nlp")
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["run", str(config), "--output", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert f"'a' ({a}) and 'b' ({b}) share input space 'loans'" in error
    assert "column 'job' has the categories ['x', 'y', 'z'] in 'a' but ['p', 'q', 'r'] in 'b'" in (
        error
    )
    assert not out.exists() or not any(out.rglob("summary.json"))


def test_a_shared_input_space_needs_the_same_columns_in_order(tmp_path: Path) -> None:
    from cdkd_core.config.loading import parse_config
    from cdkd_core.data.preparation import prepare_domains
    from cdkd_core.host.plugin_host import PluginHost

    host = PluginHost(entry_points=False)
    a = _jobs(tmp_path / "a.csv", ("x", "y", "z"))
    same = _jobs(tmp_path / "same.csv", ("z", "y", "x"))  # the same categories: fine
    assert len(prepare_domains(parse_config(_shared(a, same)), host)) == 2
    other = _jobs(tmp_path / "b.csv", ("x", "y", "z"), columns=("years", "job"))
    with pytest.raises(DataError) as info:
        prepare_domains(parse_config(_shared(a, other)), host)
    assert "feature 1 is 'age' in 'a'" in str(info.value)
    assert "but 'years' in 'b'" in str(info.value)
    assert f"'a' ({a}) and 'b' ({other}) share input space 'loans'" in str(info.value)
