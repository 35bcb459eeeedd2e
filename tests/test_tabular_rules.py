"""The ``tabular`` domain's documented rules for users' cells: label spellings and
``classes``, column types (``na_values``, ``numeric``, ``categorical``), float32 overflow,
every problem of a file in one error, and the config checks (one-character delimiter)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch

from cdkd_core.builtins.domains import TabularCSV
from cdkd_core.components.domain import DomainData
from cdkd_core.data.labels import check_classes, encode_labels, parse_number
from cdkd_core.data.problems import MAX_LISTED, Problems
from cdkd_core.data.tabular import read_csv
from cdkd_core.errors import DataError

torch.set_num_threads(1)


def _write(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _load(path: Path, **params) -> DomainData:
    return TabularCSV.from_params({"path": str(path), "label": "label", **params}).load(seed=0)


def _rows(n: int = 40, labels: tuple[str, ...] = ("a", "b")) -> list[list[object]]:
    return [[i, (i * 7) % 11, labels[i % len(labels)]] for i in range(n)]


def _width(data: DomainData) -> int:
    return data.splits["train"].teacher_x.shape[1]


# --------------------------------------------------------------------------- labels


def test_labels_equal_as_numbers_are_one_class(tmp_path: Path) -> None:
    spellings = ["1", "1.0", " 1 ", "1", "0", "0.0", "0", "1"]
    rows = [[i, i, spellings[i % len(spellings)]] for i in range(40)]
    data = _load(_write(tmp_path / "t.csv", ["id", "x", "label"], rows))
    assert data.classes == ["0", "1"]  # most frequent spelling; numbers sorted by value
    y = torch.cat([s.y for s in data.splits.values()])
    ids = torch.cat([s.teacher_x[:, 0] for s in data.splits.values()]).round().long()
    expected = [1 if spellings[i % len(spellings)].strip().startswith("1") else 0 for i in ids]
    assert y.tolist() == expected


def test_numeric_classes_sort_by_value() -> None:
    labels = encode_labels(["10", "2", "2", "10", "1e1"], path="f.csv", column="y")
    assert labels.classes == ["2", "10"]
    assert labels.codes.tolist() == [1, 0, 0, 1, 1]


def test_labels_differing_in_case_are_refused_with_a_hint(tmp_path: Path) -> None:
    rows = _rows(labels=("Yes", "yes", "no"))
    path = _write(tmp_path / "t.csv", ["id", "x", "label"], rows)
    with pytest.raises(DataError) as info:
        _load(path)
    msg = str(info.value)
    assert f"{path}, column 'label'" in msg
    assert "['Yes', 'yes']" in msg
    assert "classes:" in msg
    assert "np.str_" not in msg
    assert info.value.exit_code == 2


def test_separator_spellings_are_refused_but_grades_are_not() -> None:
    with pytest.raises(DataError, match="'no risk', 'no_risk'"):
        encode_labels(["no risk", "no_risk", "risk"], path="f.csv", column="y")
    grades = encode_labels(["A+", "A", "A-", "B"], path="f.csv", column="y")
    assert grades.classes == ["A", "A+", "A-", "B"]


def test_classes_fix_the_order_and_match_case_and_numbers(tmp_path: Path) -> None:
    spellings = ["Yes", "yes", "NO", "no"]
    rows = [[i, i, spellings[i % 4]] for i in range(40)]
    data = _load(_write(tmp_path / "t.csv", ["id", "x", "label"], rows), classes=["yes", "no"])
    assert data.classes == ["yes", "no"]
    ids = torch.cat([s.teacher_x[:, 0] for s in data.splits.values()]).round().long()
    y = torch.cat([s.y for s in data.splits.values()])
    assert y.tolist() == [0 if i % 4 < 2 else 1 for i in ids.tolist()]
    numbers = encode_labels(["1.0", "0", "1"], path="f", column="y", classes=["0", "1"])
    assert numbers.codes.tolist() == [1, 0, 1]


def test_a_label_outside_classes_names_the_lines(tmp_path: Path) -> None:
    rows = _rows(labels=("a", "b"))
    rows[5][2] = "c"  # line 7
    rows[8][2] = "maybe"  # line 10
    path = _write(tmp_path / "t.csv", ["id", "x", "label"], rows)
    with pytest.raises(DataError) as info:
        _load(path, classes=["a", "b"])
    msg = str(info.value)
    assert f"{path}: 2 problems" in msg
    assert f"{path}, line 7, column 'label': label 'c' is not one of the classes ['a', 'b']" in msg
    assert f"{path}, line 10, column 'label': label 'maybe'" in msg


def test_a_listed_class_without_examples_is_kept_with_a_warning(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", ["id", "x", "label"], _rows())
    with pytest.warns(UserWarning, match="no example of class"):
        data = _load(path, classes=["b", "never", "a"])
    assert data.classes == ["b", "never", "a"]
    y = torch.cat([s.y for s in data.splits.values()])
    assert set(y.tolist()) == {0, 2}


def test_classes_param_is_checked() -> None:
    cfg = TabularCSV.Config.model_validate({"path": "x.csv", "label": "y", "classes": [0, 1]})
    assert cfg.classes == ["0", "1"]
    for bad, fragment in (
        (["a"], "at least two"),
        (["1", "1.0"], "one class twice"),
        (["a", " a"], "one class twice"),
    ):
        with pytest.raises(pydantic.ValidationError, match=fragment):
            TabularCSV.Config.model_validate({"path": "x.csv", "label": "y", "classes": bad})
    assert check_classes(None) is None


# --------------------------------------------------------------------------- column types


def test_a_default_missing_token_keeps_a_numeric_column_numeric(tmp_path: Path) -> None:
    rows = _rows()
    plain = _width(_load(_write(tmp_path / "a.csv", ["id", "x", "label"], rows)))
    for token in ("n/a", "N/A", "NULL", "none", "?", "NaN"):
        rows[3][1] = token
        data = _load(_write(tmp_path / "b.csv", ["id", "x", "label"], rows))
        assert _width(data) == plain == 2, token


@pytest.mark.parametrize("row", [0, 1, 2, 3, 4, 5, 6, 7])  # train, val or test: the same
def test_a_stray_token_in_a_numeric_column_is_an_error_in_every_split(
    tmp_path: Path, row: int
) -> None:
    rows = _rows()
    rows[row][1] = "unknown"
    path = _write(tmp_path / "t.csv", ["id", "x", "label"], rows)
    with pytest.raises(DataError) as info:
        _load(path)
    msg = str(info.value)
    assert f"{path}, line {row + 2}, column 'x': 'unknown' is not a number" in msg
    assert "na_values" in msg and "categorical" in msg


def test_na_values_and_declared_types(tmp_path: Path) -> None:
    rows = _rows()
    rows[3][1] = "-"
    path = _write(tmp_path / "t.csv", ["id", "x", "label"], rows)
    assert _width(_load(path, na_values=["", "-"])) == 2
    one_hot = _load(path, categorical=["x"])
    assert _width(one_hot) == 1 + len({r[1] for r in rows})
    with pytest.raises(DataError, match=r"line 5, column 'x': '-' is not a number \(the column"):
        _load(path, numeric=["x"])


def test_a_mostly_text_column_is_categorical(tmp_path: Path) -> None:
    rows = [[i, ["red", "green", "3"][i % 3], "a" if i % 2 else "b"] for i in range(30)]
    data = _load(_write(tmp_path / "t.csv", ["id", "colour", "label"], rows))
    assert _width(data) == 4


def test_declared_columns_are_checked(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", ["id", "x", "label"], _rows())
    with pytest.raises(DataError, match=r"declared column\(s\) \['z'\]"):
        _load(path, numeric=["z"])
    for params, fragment in (
        ({"numeric": ["x"], "categorical": ["x"]}, "both numeric and categorical"),
        ({"numeric": ["y"]}, "label column 'y' is declared"),
        ({"features": ["id"], "categorical": ["x"]}, "not among features"),
    ):
        with pytest.raises(pydantic.ValidationError, match=fragment):
            TabularCSV.Config.model_validate({"path": "x.csv", "label": "y", **params})


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("1e39", "overflows float32"), ("-1e400", "is infinite"), ("1" + "0" * 400, "infinite")],
)
def test_values_beyond_float32_name_line_and_column(
    tmp_path: Path, value: str, fragment: str
) -> None:
    rows = _rows()
    rows[20][1] = value  # line 22
    path = _write(tmp_path / "t.csv", ["id", "x", "label"], rows)
    with pytest.raises(DataError) as info:
        _load(path)
    assert f"{path}, line 22, column 'x':" in str(info.value)
    assert fragment in str(info.value)


def test_tiny_values_underflow_to_zero(tmp_path: Path) -> None:
    rows = _rows()
    rows[2][1] = "1e-320"
    data = _load(_write(tmp_path / "t.csv", ["id", "x", "label"], rows))
    assert all(torch.isfinite(s.teacher_x).all() for s in data.splits.values())


def test_parse_number() -> None:
    assert parse_number(" 2.5 ") == 2.5
    assert parse_number("-inf") == -np.inf
    assert parse_number("nan") is None
    assert parse_number("1_000") is None
    assert parse_number("3,5") is None


# --------------------------------------------------------------------------- every problem


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    rows = _rows(60)
    for i in range(0, 50, 2):  # 25 cells overflowing float32, lines 2, 4, ...
        rows[i][1] = "1e39"
    rows[1][2] = ""  # a missing label, line 3
    path = _write(tmp_path / "t.csv", ["id", "x", "label"], rows)
    with pytest.raises(DataError) as info:
        _load(path)
    msg = str(info.value)
    first, *listed = msg.splitlines()
    assert first == f"{path}: 26 problems (fix them all, then run again):"
    assert len(listed) == MAX_LISTED + 1
    assert listed[-1] == "  ... and 6 more"
    assert f"{path}, line 3: label 'label' is missing" in msg
    assert f"{path}, line 2, column 'x': '1e39' overflows float32" in msg


def test_ragged_rows_are_all_reported(tmp_path: Path) -> None:
    lines = ["id,x,label"] + [f"{i},{i},{i % 2}" for i in range(10)]
    lines[3] += ",extra"
    lines[6] = "5"
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        read_csv(path)
    msg = str(info.value)
    assert f"{path}, line 4: 4 fields, the header has 3" in msg
    assert f"{path}, line 7: 1 fields, the header has 3" in msg


def test_problems_format_one_and_many() -> None:
    one = Problems("f.csv")
    one.add("bad", 3, "x")
    assert one.message() == "f.csv, line 3, column 'x': bad"
    many = Problems("f.csv", limit=2)
    for i in range(5):
        many.add("bad", i + 2)
    assert many.message().splitlines() == [
        "f.csv: 5 problems (fix them all, then run again):",
        "  f.csv, line 2: bad",
        "  f.csv, line 3: bad",
        "  ... and 3 more",
    ]
    Problems("f.csv").raise_if_any()  # nothing found: no error


# --------------------------------------------------------------------------- files, config


def test_a_directory_is_not_reported_as_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a directory, not a file"):
        _load(tmp_path)


def test_a_multi_character_delimiter_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match="one character"):
        TabularCSV.Config.model_validate({"path": "x.csv", "label": "y", "delimiter": ";;"})
    path = _write(tmp_path / "t.csv", ["id", "x", "label"], _rows())
    with pytest.raises(DataError, match="one character"):
        read_csv(path, delimiter="ab")


def test_validate_refuses_a_multi_character_delimiter(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cdkd_core.cli import app

    path = _write(tmp_path / "t.csv", ["id", "x", "label"], _rows())
    config = tmp_path / "c.yaml"
    config.write_text(
        "domains:\n"
        f"  - {{name: tabular, params: {{path: '{path}', label: label, delimiter: '::'}}}}\n"
    )
    result = CliRunner().invoke(app, ["validate", str(config)])
    assert result.exit_code == 2, result.output
    assert "domains.0.params.delimiter" in result.output
    assert "Traceback" not in result.output


def test_utf16_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "u16.csv"
    text = "id,x,label\n" + "".join(f"{i},{i},{'ab'[i % 2]}\n" for i in range(30))
    path.write_bytes(text.encode("utf-16"))
    assert read_csv(path).header == ["id", "x", "label"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _width(_load(path)) == 2


def test_the_finiteness_check_names_the_entry_and_dtype() -> None:
    from cdkd_core.components.domain import Split
    from cdkd_core.data.preparation import _check

    x = torch.zeros(6, 3)
    x[4, 2] = float("inf")
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    splits = {s: Split.single_view(x, y) for s in ("train", "val", "test")}
    data = DomainData(modality="tabular", task="t", classes=["a", "b"], splits=splits)
    with pytest.raises(DataError) as info:
        _check("mine", data)
    assert "train split, example 4: teacher_x has NaN or infinite values" in str(info.value)
    assert "entry [2] is inf in float32" in str(info.value)


# --------------------------------------------------------------------------- decimal commas


def _decimal_rows(n: int = 60, mark: str = ",") -> list[str]:
    """Four numeric columns (two decimals) and a label, ``;``-separated."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        cells = [f"{v:.2f}".replace(".", mark) for v in rng.uniform(0, 100, 4)]
        rows.append(";".join([*cells, "ab"[i % 2]]))
    return rows


def _semicolons(path: Path, rows: list[str]) -> Path:
    path.write_text("a;b;c;d;label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_decimal_commas_are_refused_with_the_fix_not_one_hot(tmp_path: Path) -> None:
    """Four numeric columns written 1,23 used to become hundreds of one-hot features."""
    path = _semicolons(tmp_path / "comma.csv", _decimal_rows())
    with pytest.raises(DataError) as info:
        _load(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: 4 problems"), msg
    first = _decimal_rows()[0].split(";")[0]
    assert f"{path}, line 2, column 'a': 60 of its 60 cells are numbers" in msg
    assert f"decimal comma (e.g. {first!r})" in msg
    assert 'decimal: ","' in msg
    for column in "bcd":
        assert f"column {column!r}" in msg


def test_decimal_comma_param_reads_the_numbers_as_the_point_file_does(tmp_path: Path) -> None:
    comma = _load(_semicolons(tmp_path / "comma.csv", _decimal_rows()), decimal=",")
    point = _load(_semicolons(tmp_path / "point.csv", _decimal_rows(mark=".")))
    assert comma.feature_names == point.feature_names == ["a", "b", "c", "d"]
    for split in ("train", "val", "test"):
        assert torch.equal(comma.splits[split].teacher_x, point.splits[split].teacher_x)


def test_decimal_comma_groups_thousands_and_keeps_stray_rules(tmp_path: Path) -> None:
    rows = [f"1.{i:03d}.000,5;1 234,{i};{i};{i};{'ab'[i % 2]}" for i in range(30)]
    data = _load(_semicolons(tmp_path / "grouped.csv", rows), decimal=",")
    x = torch.cat([s.teacher_x for s in data.splits.values()])
    assert _width(data) == 4
    assert sorted(x[:, 0].tolist())[0] == pytest.approx(1000000.5)  # "1.000.000,5"
    # a point is no decimal mark with decimal ",": one stray 1.5 is named
    rows[3] = "1.5;1;1;1;a"
    with pytest.raises(DataError, match=r"line 5, column 'a': the column mixes decimal marks"):
        _load(_semicolons(tmp_path / "stray.csv", rows), decimal=",")
    rows[3] = "n/a-ish;1;1;1;a"  # a stray that is no number with either mark
    with pytest.raises(DataError, match=r"line 5, column 'a': 'n/a-ish' is not a number"):
        _load(_semicolons(tmp_path / "stray.csv", rows), decimal=",")
    # spaces grouping thousands, with the default decimal point: refused, not categories
    spaced = [f"{i};{i} 234;{i};{i};{'ab'[i % 2]}" for i in range(1, 31)]
    with pytest.raises(DataError, match=r"column 'b': 30 of its 30 cells .* grouped by spaces"):
        _load(_semicolons(tmp_path / "spaced.csv", spaced))


@pytest.mark.parametrize("decimal", [".", ","])
def test_a_column_mixing_decimal_marks_is_refused_either_way(tmp_path: Path, decimal) -> None:
    rows = [f"{'-2.5' if i < 2 else '1,5'};{i};{i};{i};{'ab'[i % 2]}" for i in range(30)]
    path = _semicolons(tmp_path / "mixed.csv", rows)
    with pytest.raises(DataError) as info:
        _load(path, decimal=decimal)
    msg = str(info.value)
    assert msg.startswith(f"{path}, line "), msg
    assert "column 'a': the column mixes decimal marks" in msg
    assert "'-2.5' (line 2)" in msg if decimal == "." else "'1,5' (line 4)" in msg


def test_a_point_file_read_with_decimal_comma_is_refused(tmp_path: Path) -> None:
    path = _semicolons(tmp_path / "point.csv", _decimal_rows(mark="."))
    with pytest.raises(DataError, match=r"decimal point \(e\.g\. '[0-9.]+'\), but decimal is"):
        _load(path, decimal=",")


def test_comma_categories_are_not_refused(tmp_path: Path) -> None:
    """Labels holding commas, and 1,2 beside x, stay categorical."""
    rows = [
        f'"{["a,b", "c,d", "e,f"][i % 3]}","{["1,2", "x"][i % 2]}",{i},{"yn"[i % 2]}'
        for i in range(40)
    ]
    path = tmp_path / "cats.csv"
    path.write_text("tags,mixed,n,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    data = _load(path)
    assert data.feature_names == [
        "tags=a,b", "tags=c,d", "tags=e,f", "mixed=1,2", "mixed=x", "n"
    ]  # fmt: skip


def test_a_declared_numeric_column_with_decimal_commas_names_the_fix(tmp_path: Path) -> None:
    path = _semicolons(tmp_path / "comma.csv", _decimal_rows())
    with pytest.raises(DataError, match=r"column 'a': 60 of its 60 cells .*decimal: \",\""):
        _load(path, numeric=["a"], categorical=["b", "c", "d"])
    data = _load(path, categorical=["a", "b", "c", "d"])  # declared categories stay so
    assert _width(data) > 4


def test_decimal_param_is_validated(tmp_path: Path) -> None:
    path = _semicolons(tmp_path / "comma.csv", _decimal_rows())
    with pytest.raises(pydantic.ValidationError, match="decimal"):
        _load(path, decimal=";")


def test_predict_reads_decimal_commas_as_the_domain_says(tmp_path: Path) -> None:
    """The domain's input reader (``cdkd predict``) encodes a decimal-comma file with the
    domain's own decimal param, as load did."""
    from cdkd_core.components.raw_input import InputOptions

    path = _semicolons(tmp_path / "comma.csv", _decimal_rows())
    domain = TabularCSV.from_params({"path": str(path), "label": "label", "decimal": ","})
    new = _semicolons(tmp_path / "new.csv", ["1,5;2;3,25;4;a", "10;0,5;1;1;b"])
    (batch,) = domain.input_reader(seed=0).batches(new, InputOptions(), chunk_size=10)
    assert batch.student_x.tolist() == [[1.5, 2.0, 3.25, 4.0], [10.0, 0.5, 1.0, 1.0]]
    trained = _semicolons(tmp_path / "point.csv", _decimal_rows(mark="."))
    point = TabularCSV.from_params({"path": str(trained), "label": "label"})
    with pytest.raises(DataError, match=r"'1,5' is not a number .*decimal mark '\.'"):
        list(point.input_reader(seed=0).batches(new, InputOptions(), chunk_size=10))


# --------------------------------------------------------------------------- long fields


def test_a_text_cell_over_the_csv_module_default_limit_is_read(tmp_path: Path) -> None:
    import csv

    from cdkd_core.data.raw_input import csv_chunks

    long = "word " * 40_000  # 200,000 characters, over csv's default 131,072
    rows = [f'{i},"{long if i == 3 else "short"}",{"ab"[i % 2]}' for i in range(30)]
    path = tmp_path / "long.csv"
    path.write_text("id,note,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    table = read_csv(path)
    assert table.column("note")[3] == long.strip()
    (chunk,) = list(csv_chunks(path))
    assert chunk.column("note")[3] == long.strip()
    assert _load(path).feature_names[0] == "id"  # the domain reads it too
    assert csv.field_size_limit() >= 2**31 - 1
