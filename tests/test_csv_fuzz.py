"""Property-based fuzzing of users' CSV files through the ``tabular`` domain: random tables
(mixed numeric and text columns, missing-value tokens, extreme values, label spellings,
odd encodings and line ends, quoted fields holding delimiters and newlines) either load
with the documented interpretation or are refused with one DataError naming the file
(and, per cell, line and column) — never another exception. A few go through ``cdkd run``
too: exit 0 or 2, never a traceback."""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections import Counter
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cdkd_core.builtins.domains import TabularCSV
from cdkd_core.data.tabular import NA_VALUES, STRAY_SHARE
from cdkd_core.errors import DataError

TRIED: Counter[str] = Counter()

NUMBERS = ["0", "1", "-2.5", "3e2", "+7", ".5", "42", "-0.001", "1e-320", "6.02e23"]
#: numbers written with a decimal comma (some with thousands grouped), as a ``;`` file has them
COMMA_NUMBERS = ["1,5", "-2,25", "0,001", "3,0", "1.234,5", "12", "1 000,75", "7"]
EXTREMES = ["1e39", "-1e400", "1" + "0" * 400, "inf", "-Infinity", "3.4e38", "nan"]
TOKENS = ["", "NA", "na", "N/A", "n/a", "NaN", "null", "NULL", "None", "?", " ", "-"]
TEXTS = ["red", "Blue", "a,b", 'say "hi"', "two\nlines", "Zürich", "ü;|\t", "x_1", "1_000"]
LABELS = ["yes", "Yes", "no", "NO", "1", "1.0", " 1 ", "0", "a", "b", "A", "", "NA", "ja"]
ENCODINGS = ["utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252"]

cells = st.one_of(
    st.sampled_from(NUMBERS),
    st.sampled_from(EXTREMES),
    st.sampled_from(TOKENS),
    st.sampled_from(TEXTS),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(min_value=-(10**60), max_value=10**60).map(str),
)


@st.composite
def column(draw, n: int) -> list[str]:
    """A column: mostly numbers, mostly text, or anything, with tokens sprinkled in."""
    kind = draw(st.sampled_from(["numeric", "numeric", "text", "any", "comma"]))
    base = {
        "numeric": st.sampled_from(NUMBERS) | st.floats(-1e6, 1e6).map(lambda v: f"{v:.3f}"),
        "text": st.sampled_from(TEXTS),
        "any": cells,
        "comma": st.sampled_from(COMMA_NUMBERS)
        | st.floats(-1e6, 1e6).map(lambda v: f"{v:.2f}".replace(".", ",")),
    }[kind]
    values = draw(st.lists(base, min_size=n, max_size=n))
    for _ in range(draw(st.integers(0, 3))):
        values[draw(st.integers(0, n - 1))] = draw(cells)
    return values


@st.composite
def tables(draw) -> dict:
    n = draw(st.integers(min_value=6, max_value=40))
    width = draw(st.integers(min_value=1, max_value=4))
    header = [f"f{j}" for j in range(width)] + ["label"]
    columns = [draw(column(n)) for _ in range(width)]
    pool = draw(st.lists(st.sampled_from(LABELS), min_size=2, max_size=4, unique=True))
    labels = [pool[i % len(pool)] for i in range(n)]  # every spelling present
    for _ in range(draw(st.integers(0, 3))):
        labels[draw(st.integers(0, n - 1))] = draw(st.sampled_from(LABELS))
    labels = draw(st.permutations(labels))
    rows = [[c[i] for c in columns] + [labels[i]] for i in range(n)]
    if draw(st.integers(0, 9)) == 0:  # sometimes a ragged row
        rows[draw(st.integers(0, n - 1))].append("extra")
    params: dict = {}
    if draw(st.booleans()):
        clean = sorted({lab.strip() for lab in pool if lab.strip() and lab.strip() != "NA"})
        if len(clean) >= 2 and draw(st.booleans()):
            try:
                from cdkd_core.data.labels import check_classes

                params["classes"] = check_classes(clean)
            except ValueError:
                pass
    if draw(st.booleans()):
        params["na_values"] = draw(st.lists(st.sampled_from(TOKENS), max_size=4))
    if draw(st.booleans()):
        params["categorical"] = [draw(st.sampled_from(header[:-1]))]
    return {
        "header": header,
        "rows": rows,
        "delimiter": draw(st.sampled_from([",", ";", "\t", "|"])),
        "give_delimiter": draw(st.booleans()),
        "encoding": draw(st.sampled_from(ENCODINGS)),
        "newline": draw(st.sampled_from(["\n", "\r\n"])),
        "params": params,
    }


def _write(tmp: Path, spec: dict) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=spec["delimiter"], lineterminator=spec["newline"])
    writer.writerow(spec["header"])
    writer.writerows(spec["rows"])
    path = tmp / "users data.csv"
    path.write_bytes(buf.getvalue().encode(spec["encoding"], errors="replace"))
    return path


def _is_number(cell: str, missing: frozenset[str]) -> bool | None:
    """The documented rule, written independently: None for a missing cell."""
    text = cell.strip()
    if text.casefold() in missing:
        return None
    if "_" in text:
        return False
    try:
        return not math.isnan(float(text))
    except ValueError:
        return False


def _is_comma_number(cell: str) -> bool:
    """A number with one decimal comma and nothing else (no thousands separators): a subset
    of what ``decimal: ","`` reads, written independently."""
    text = cell.strip()
    if text.count(",") != 1 or "." in text or " " in text or "_" in text:
        return False
    try:
        return not math.isnan(float(text.replace(",", ".")))
    except ValueError:
        return False


def _label_key(label: str) -> object:
    text = label.strip()
    try:
        value = float(text)
        if math.isfinite(value) and "_" not in text:
            return value
    except ValueError:
        pass
    return text


def _check_loaded(data, path: Path, params: dict) -> None:
    """The documented interpretation of a table that loaded."""
    from cdkd_core.data.tabular import read_csv

    table = read_csv(path, params.get("delimiter"))  # what the domain read
    for split in data.splits.values():
        assert torch.isfinite(split.teacher_x).all()
        assert ((split.y >= 0) & (split.y < len(data.classes))).all()
    if "classes" in params:
        assert data.classes == params["classes"]
    else:  # one class per label distinct as a number, else as a stripped string
        keys = {_label_key(v) for v in table.column("label")}
        assert len(data.classes) == len(keys), (data.classes, keys)
    missing = frozenset(v.strip().casefold() for v in params.get("na_values", NA_VALUES))
    declared = set(params.get("categorical", []))
    features = [c for c in table.header if c != "label"]
    numeric = 0
    for name in features:
        kinds = [_is_number(v, missing) for v in table.column(name)]
        good, bad = kinds.count(True), kinds.count(False)
        stray = bad and good > bad and bad <= max(1, STRAY_SHARE * (good + bad))
        assert name in declared or not stray, (name, "a stray token loaded silently")
        cells = [v for v in table.column(name) if _is_number(v, missing) is not None]
        comma = [v for v in cells if _is_comma_number(v)]
        decimal_commas = comma and all(_is_comma_number(v) or _is_number(v, missing) for v in cells)
        assert name in declared or not decimal_commas, (name, "decimal commas loaded as text")
        numeric += name not in declared and not bad
    assert data.splits["train"].teacher_x.shape[1] >= numeric
    if numeric == len(features):  # numeric columns stay one feature each
        assert data.splits["train"].teacher_x.shape[1] == numeric


def _check_refused(exc: DataError, path: Path) -> None:
    message = str(exc)
    assert str(path) in message, message
    assert "np.str_" not in message and "np.float" not in message, message
    listed = message.splitlines()[1:]
    for item in listed:
        assert item.startswith(f"  {path}") or item.startswith("  ... and"), message


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=tables())
def test_random_csvs_load_as_documented_or_are_refused_clearly(tmp_path_factory, spec):
    path = _write(tmp_path_factory.mktemp("fuzz"), spec)
    params = {"path": str(path), "label": "label", **spec["params"]}
    if spec["give_delimiter"]:
        params["delimiter"] = spec["delimiter"]
    TRIED["tried"] += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = TabularCSV.from_params(params).load(seed=0)
    except DataError as exc:
        TRIED["refused"] += 1
        _check_refused(exc, path)
        return
    TRIED["loaded"] += 1
    _check_loaded(data, path, params)


def _cli_config(path: Path, params: dict) -> dict:
    return {
        "name": "fuzz",
        "domains": [{"name": "tabular", "params": {"path": str(path), "label": "label", **params}}],
        "teacher": {"trunk": {"name": "mlp", "params": {"width": 8, "depth": 1}}},
        "student": {"trunk": {"name": "mlp", "params": {"width": 4, "depth": 1}}},
        "encoder": {"name": "pca", "params": {"dim": 2}},
        "losses": [{"name": "ce"}],
        "train": {"epochs": 1, "device": "cpu", "threads": 1},
    }


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=tables())
def test_random_csvs_through_the_cli_exit_0_or_2(tmp_path_factory, monkeypatch, spec):
    import yaml

    from cdkd_core.cli import app

    tmp = tmp_path_factory.mktemp("cli")
    path = _write(tmp, spec)
    config = tmp / "config.yaml"
    config.write_text(yaml.safe_dump(_cli_config(path, spec["params"])))
    monkeypatch.setenv("CDKD_DISABLE_PLUGINS", "medical finance nlp")
    TRIED["cli"] += 1
    result = CliRunner().invoke(app, ["run", str(config), "--output", str(tmp / "runs")])
    assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        TRIED["cli_refused"] += 1
        errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and str(path) in errors[0], result.output


def test_a_messy_but_valid_csv_runs_through_the_cli(tmp_path, monkeypatch):
    """BOM, CRLF, missing tokens in numeric columns, labels spelled 1/1.0/" 1 ": exit 0."""
    import json

    import yaml

    from cdkd_core.cli import app

    rows = ["x,colour,label"]
    for i in range(40):
        x = ["n/a", "NULL", "?", ""][i % 4] if i % 7 == 0 else f"{i * 0.25:.2f}"
        rows.append(f'{x},"red, dark",{["1", "1.0", " 1 ", "0", "0.0"][i % 5]}')
    path = tmp_path / "messy.csv"
    path.write_bytes(("\ufeff" + "\r\n".join(rows) + "\r\n").encode("utf-8"))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_cli_config(path, {})))
    monkeypatch.setenv("CDKD_DISABLE_PLUGINS", "medical finance nlp")
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["run", str(config), "--output", str(out)])
    assert result.exit_code == 0, result.output
    (run,) = list(out.iterdir())
    assert "tabular" in json.loads((run / "summary.json").read_text())["domains"]
    data = TabularCSV.from_params({"path": str(path), "label": "label"}).load(seed=0)
    assert data.classes == ["0", "1"]  # 1, 1.0 and " 1 " are one class
    assert data.splits["train"].teacher_x.shape[1] == 2  # x stays numeric, colour one-hot


def test_fuzz_counts(capsys):
    """Run last (file order): how many random files the property tests tried."""
    with capsys.disabled():
        print(f"\ncsv fuzz: {dict(TRIED)}")
    assert TRIED["tried"] >= 300, TRIED
    assert TRIED["loaded"] > 0 and TRIED["refused"] > 0, TRIED


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q", "-s"])
