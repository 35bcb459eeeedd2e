"""Property-based fuzzing of bad data files: a valid CSV broken in one place at a time must
be refused before any training with one DataError naming the file (and the line where one
applies), leaving no run directory, and through the CLI with exit code 2 and no
traceback. Never a silent wrong result."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cdkd_core import load_config, run_pipeline
from cdkd_core.errors import CdkdError, DataError
from cdkd_core.host.plugin_host import PluginHost

HOST = PluginHost(entry_points=False)
TRIED = {"csv": 0}


def _rows(n: int, seed: int) -> list[list[str]]:
    """A valid table: two numeric columns, one categorical, a binary label."""
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = "yes" if i % 2 else "no"
        out.append([f"{rng.gauss(0, 1):.3f}", str(rng.randint(0, 9)), rng.choice("abc"), label])
    return out


HEADER = ["x1", "x2", "colour", "outcome"]


def _write(rows: list[list[str]], header=HEADER, delimiter: str = ",") -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _corrupt(kind: str, rows: list[list[str]], where: int) -> tuple[bytes, dict, str | None]:
    """(file bytes, extra domain params, the line number the error must name, if any)."""
    line = where + 2  # header on line 1
    rows = [list(r) for r in rows]
    if kind == "wrong_delimiter":  # a ';' file read as ','
        return _write(rows, delimiter=";").encode(), {"delimiter": ","}, None
    if kind == "no_label_column":
        return _write([r[:3] for r in rows], HEADER[:3]).encode(), {}, None
    if kind == "invalid_utf8":  # bad bytes at the start of data row `where`
        text = _write(rows).encode()
        cut = len(_write(rows[:where]).encode())
        return text[:cut] + b"\xff\xfe" + text[cut:], {}, str(line)
    if kind == "empty":
        return b"", {}, None
    if kind == "header_only":
        return _write([]).encode(), {}, None
    if kind == "ragged_row":
        rows[where] = rows[where] + ["extra"]
        return _write(rows).encode(), {}, str(line)
    if kind == "missing_label":
        rows[where][3] = ""
        return _write(rows).encode(), {}, str(line)
    if kind == "infinite_value":
        rows[where][0] = "inf"
        return _write(rows).encode(), {}, str(line)
    if kind == "one_class":
        for r in rows:
            r[3] = "yes"
        return _write(rows).encode(), {}, None
    if kind == "unknown_feature":
        return _write(rows).encode(), {"features": ["x1", "weight"]}, None
    if kind == "duplicate_header":
        return _write(rows, ["x1", "x1", "colour", "outcome"]).encode(), {}, None
    raise AssertionError(kind)


KINDS = [
    "wrong_delimiter",
    "no_label_column",
    "invalid_utf8",
    "empty",
    "header_only",
    "ragged_row",
    "missing_label",
    "infinite_value",
    "one_class",
    "unknown_feature",
    "duplicate_header",
]


def _config(path: Path, extra: dict) -> dict:
    return {
        "name": "fuzz",
        "domains": [
            {
                "name": "tabular",
                "role": "source",
                "params": {"path": str(path), "label": "outcome", **extra},
            }
        ],
        "teacher": {"trunk": {"name": "mlp", "params": {"width": 8, "depth": 1}}},
        "student": {"trunk": {"name": "mlp", "params": {"width": 4, "depth": 1}}},
        "encoder": {"name": "pca", "params": {"dim": 2}},
        "train": {"epochs": 1, "device": "cpu", "threads": 1},
    }


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    kind=st.sampled_from(KINDS),
    n=st.integers(min_value=30, max_value=80),
    seed=st.integers(min_value=0, max_value=10_000),
    where=st.integers(min_value=0, max_value=29),
)
def test_a_broken_csv_is_refused_before_training(tmp_path_factory, kind, n, seed, where):
    tmp = tmp_path_factory.mktemp("csv")
    data, extra, line = _corrupt(kind, _rows(n, seed), where)
    path = tmp / "loans.csv"
    path.write_bytes(data)
    TRIED["csv"] += 1
    config = load_config(_config(path, extra), host=HOST)
    out = tmp / "runs"
    with pytest.raises(CdkdError) as info:
        run_pipeline(config, output=out, host=HOST)
    message = str(info.value)
    assert isinstance(info.value, DataError), (kind, message)
    assert str(path) in message, (kind, message)
    if line is not None:
        assert f"line {line}" in message, (kind, message)
    assert not out.exists() or not list(out.iterdir()), kind  # nothing half-written


def test_one_class_is_refused_with_a_clear_message(tmp_path):
    data, extra, _ = _corrupt("one_class", _rows(40, 0), 0)
    path = tmp_path / "loans.csv"
    path.write_bytes(data)
    with pytest.raises(DataError, match=r"loans\.csv: label column 'outcome' holds the single"):
        run_pipeline(load_config(_config(path, extra), host=HOST), output=tmp_path, host=HOST)


@pytest.mark.parametrize("kind", ["invalid_utf8", "ragged_row", "wrong_delimiter"])
def test_the_cli_reports_bad_data_in_one_line(tmp_path, monkeypatch, kind):
    import yaml

    from cdkd_core.cli import app

    data, extra, _ = _corrupt(kind, _rows(40, 1), 5)
    path = tmp_path / "loans.csv"
    path.write_bytes(data)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_config(path, extra)))
    monkeypatch.setenv("CDKD_DISABLE_PLUGINS", "medical finance nlp")
    result = CliRunner().invoke(app, ["run", str(config), "--output", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and str(path) in errors[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_fuzz_counts():
    """Run last (file order): how many broken files the property test tried."""
    assert TRIED["csv"] >= 150, TRIED
