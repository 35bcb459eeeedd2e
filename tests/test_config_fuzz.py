"""Property-based fuzzing of bad configs through the CLI.

A valid config (``TINY`` with every optional field spelled out) is broken in one place at a
time — a leaf of the wrong type or out of range, an unknown key, an unknown component, the
params of another component, a structural problem — and ``cdkd validate`` (and, on a smaller
sample, ``cdkd run``) must refuse it with exit code 2, exactly one ``error:`` line naming
the broken field (and the valid choices where the set is closed), no traceback, and no run
directory left behind. The raw YAML layer (bytes, non-UTF-8, non-mappings, bad syntax,
python tags) is fuzzed the same way.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from typer.testing import CliRunner

from cdkd_core.cli import app
from cdkd_core.config.models import (
    ComponentRef,
    DomainEntry,
    LossEntry,
    PipelineConfig,
    TeacherSpec,
    TrainConfig,
)
from tests.conftest import TINY

runner = CliRunner()

#: malformed configs / YAML files tried, per test (reported by the last test)
TRIED: Counter[str] = Counter()

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- the valid base ---------------------------------------------------------------------------
BASE: dict[str, Any] = copy.deepcopy(TINY)
BASE["domains"] = [
    {
        "name": "sklearn.wine",
        "role": "source",
        "weight": 1.0,
        "params": {"split_seed": 0, "val_fraction": 0.2},
    },
    {
        "name": "sklearn.breast_cancer",
        "alias": "bc",
        "role": "target",
        "weight": 0.5,
        "label_fraction": 0.5,
    },
]
BASE["losses"][0]["params"] = {}
BASE["losses"][2]["params"] = {}
BASE["teacher"]["feature_layer"] = "trunk"
BASE["feedback"] = {"name": "none", "params": {"rounds": 1}}
BASE["train"].update(
    teacher_epochs=2,
    eval_batch_size=256,
    teacher_lr=0.01,
    weight_decay=0.0001,
    scheduler="cosine",
    patience=3,
    grad_clip=5.0,
    teacher_gate="none",
    threads=1,
)

NAN, INF = math.nan, math.inf
NOT_NUMBERS = ["three", "", [1], {"a": 1}]


def ints(minimum: int, optional: bool = False, maximum: int | None = None) -> list[Any]:
    """Invalid values for an int field with ``ge=minimum`` (and ``le=maximum``)."""
    bad = [minimum - 1, minimum - 7, 1.5, NAN, INF, -INF, *NOT_NUMBERS, True, False]
    if maximum is not None:
        bad.append(maximum + 1)
    return bad if optional else [*bad, None]


def floats(
    low: float, strict: bool, optional: bool = False, high: float | None = None
) -> list[Any]:
    """Invalid values for a float field ``> low`` (strict) or ``>= low``, ``<= high``."""
    bad = [low - 0.1, low - 3.0, NAN, INF, -INF, *NOT_NUMBERS, True, False]
    if strict:
        bad.append(low)
    if high is not None:
        bad += [high + 0.5, high + 1e-6]
    return bad if optional else [*bad, None]


NOT_STRINGS = [3, 1.5, [], {"a": 1}, None]
#: devices this machine lacks (a CUDA index beyond the GPUs torch sees; mps off a Mac)
DEVICES_MISSING = [
    *([] if torch.cuda.is_available() else ["cuda"]),
    f"cuda:{torch.cuda.device_count()}",
    *([] if torch.backends.mps.is_available() else ["mps"]),
]
NOT_MAPPINGS = ["x", 3, [1, 2], None]

#: leaf path -> (invalid values, a fragment every message must hold besides the path)
LEAVES: dict[str, tuple[list[Any], str | None]] = {
    "name": (["", "../up", "a b", "-dash", "x" * 200, *NOT_STRINGS], None),
    "seed": ([*ints(0, maximum=2**32 - 1), 2**63 - 1, 2**64], None),
    "domains.0.name": (["sklearn.wines", "nope", *NOT_STRINGS], None),
    "domains.0.role": (["teacher", "", 3, None], "'source', 'target' or 'unseen'"),
    "domains.0.weight": (floats(0, strict=True), None),
    "domains.0.params": (NOT_MAPPINGS, None),
    "domains.0.params.split_seed": (ints(0), None),
    "domains.0.params.val_fraction": ([0, -0.1, 0.5, 0.7, NAN, INF, "x", [], None], None),
    "domains.1.alias": (["bad alias", "../x", "", 3, [], {"a": 1}], None),
    "domains.1.label_fraction": (floats(0, strict=False, optional=True, high=1.0), None),
    "domains.1.weight": (floats(0, strict=True), None),
    "teacher.trunk.name": (["mlpp", "nope", *NOT_STRINGS], None),
    "teacher.trunk.params": (NOT_MAPPINGS, None),
    "teacher.trunk.params.width": (ints(1), None),
    "teacher.trunk.params.depth": (ints(0, maximum=64), None),
    "teacher.feature_layer": (NOT_STRINGS, None),
    "student.trunk.params.width": (ints(1), None),
    "encoder.name": (["pcaa", "nope", *NOT_STRINGS], None),
    "encoder.params.dim": (ints(1), None),
    "losses.0.name": (["cee", "nope", *NOT_STRINGS], None),
    "losses.1.params.temperature": (floats(0, strict=True), None),
    "losses.2.weight": (floats(0, strict=False), None),
    "feedback.name": (["nonee", *NOT_STRINGS], None),
    "feedback.params.rounds": (ints(1, maximum=100), None),
    "train.epochs": (ints(1), None),
    "train.teacher_epochs": (ints(1, optional=True), None),
    "train.batch_size": (ints(1), None),
    "train.eval_batch_size": (ints(1), None),
    "train.lr": (floats(0, strict=True), None),
    "train.teacher_lr": (floats(0, strict=True, optional=True), None),
    "train.weight_decay": (floats(0, strict=False), None),
    "train.scheduler": (["linear", "", 1, None], "'constant' or 'cosine'"),
    "train.patience": (ints(1, optional=True), None),
    "train.grad_clip": (floats(0, strict=True, optional=True), None),
    "train.teacher_gate": (["always", "", 1, None], "'none' or 'val'"),
    "train.device": (["gpu", "cuda:x", "", 0, [], None, *DEVICES_MISSING], None),
    "train.threads": (ints(1, optional=True, maximum=os.cpu_count() or 1), None),
}
#: mappings / lists that a value of the wrong shape may replace
NODES: dict[str, list[Any]] = {
    "train": NOT_MAPPINGS,
    "teacher": NOT_MAPPINGS,
    "student": NOT_MAPPINGS,
    "encoder": NOT_MAPPINGS,
    "feedback": NOT_MAPPINGS,
    "teacher.trunk": NOT_MAPPINGS,
    "domains.0": NOT_MAPPINGS,
    "losses.1": NOT_MAPPINGS,
    "domains": [{"a": 1}, "sklearn.wine", 3, None],
    "losses": [{"name": "ce"}, "ce", 3, None],
}
#: mappings an unknown key may be put in, and the model whose keys the message must offer
MAPPINGS: dict[str, type[BaseModel]] = {
    "": PipelineConfig,
    "train": TrainConfig,
    "teacher": TeacherSpec,
    "teacher.trunk": ComponentRef,
    "encoder": ComponentRef,
    "domains.0": DomainEntry,
    "losses.2": LossEntry,
}
PARAM_MAPPINGS = {
    "teacher.trunk.params": ("architectures", "mlp"),
    "student.trunk.params": ("architectures", "mlp"),
    "encoder.params": ("encoders", "pca"),
    "losses.0.params": ("losses", "ce"),
    "losses.1.params": ("losses", "kd"),
    "losses.2.params": ("losses", "hint"),
    "feedback.params": ("feedback", "none"),
    "domains.0.params": ("domains", "sklearn.wine"),
}
#: component name path -> (kind, a fragment of the choices the message must list)
NAMES = {
    "teacher.trunk.name": "available: cnn, hist_gbm, mlp",
    "student.trunk.name": "available: cnn, hist_gbm, mlp",
    "encoder.name": "available: graph, knowledge_graph, linear, pca",
    "losses.1.name": "available: ce, graph, graph_match, hint, kd, relational",
    "feedback.name": "available: hard_examples, meta, mutual, none",
    "domains.1.name": "available:",
}


@dataclass
class Case:
    """A broken config and what its error message must mention."""

    what: str
    config: Any = field(repr=False)
    path: str
    choices: str | None = None


def _parts(path: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in path.split(".") if p]


def _set(config: Any, path: str, value: Any) -> Any:
    config = copy.deepcopy(config)
    *head, last = _parts(path)
    node = config
    for part in head:
        node = node[part]
    node[last] = value
    return config


def _get(config: Any, path: str) -> Any:
    node = config
    for part in _parts(path):
        node = node[part]
    return node


def _component_fields() -> dict[tuple[str, str], set[str]]:
    from cdkd_core.host.plugin_host import PluginHost

    host = PluginHost(entry_points=False)
    return {
        (kind, name): set(info.cls.Config.model_fields)
        for kind in ("architectures", "encoders", "losses", "feedback", "domains")
        for name, info in host.components(kind).items()
    }


FIELDS = _component_fields()

#: fields whose choices are named for a wrong string only (a wrong type gets pydantic's
#: "Input should be a valid string")
CHOICES_FOR_STRINGS_ONLY = {"train.device"}


def _leaf_case(path: str, value: Any) -> Case:
    choices = LEAVES[path][1]
    if path == "train.device" and isinstance(value, str) and value not in DEVICES_MISSING:
        choices = "auto, cpu, cuda"  # a malformed name; a missing device says what to use
    if path in CHOICES_FOR_STRINGS_ONLY and not isinstance(value, str):
        choices = None
    return Case(f"{path}={value!r}", _set(BASE, path, value), path, choices)


leaf_cases = st.sampled_from(sorted(LEAVES)).flatmap(
    lambda path: st.sampled_from(LEAVES[path][0]).map(lambda value: _leaf_case(path, value))
)
node_cases = st.sampled_from(sorted(NODES)).flatmap(
    lambda path: st.sampled_from(NODES[path]).map(
        lambda value: Case(f"{path}={value!r}", _set(BASE, path, value), path)
    )
)
KEY = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)


@st.composite
def unknown_key_cases(draw: st.DrawFn) -> Case:
    where = draw(st.sampled_from(sorted(MAPPINGS) + sorted(PARAM_MAPPINGS)))
    mapping = _get(BASE, where) if where else BASE
    if where in PARAM_MAPPINGS:
        valid = FIELDS[PARAM_MAPPINGS[where]]
        choices = "valid: " + ", ".join(sorted(valid))
    else:
        valid = set(MAPPINGS[where].model_fields)
        choices = "(valid: " + ", ".join(MAPPINGS[where].model_fields) + ")"
    key = draw(KEY.filter(lambda k: k not in valid and k not in mapping))
    path = f"{where}.{key}" if where else key
    value = draw(st.sampled_from([1, "x", None, [], {}]))
    config = _set(BASE, where, {**mapping, key: value}) if where else {**BASE, key: value}
    return Case(f"unknown key {path}", config, path, choices)


@st.composite
def unknown_name_cases(draw: st.DrawFn) -> Case:
    path = draw(st.sampled_from(sorted(NAMES)))
    name = draw(KEY.map(lambda k: f"zz{k}"))
    return Case(f"{path}={name!r}", _set(BASE, path, name), path, NAMES[path])


@st.composite
def foreign_params_cases(draw: st.DrawFn) -> Case:
    """Params of another component (of the same or another kind)."""
    where = draw(st.sampled_from(sorted(PARAM_MAPPINGS)))
    own = FIELDS[PARAM_MAPPINGS[where]]
    donor = draw(
        st.sampled_from(sorted(k for k, fields in FIELDS.items() if fields - own)),
    )
    key = draw(st.sampled_from(sorted(FIELDS[donor] - own)))
    config = _set(BASE, where, {**_get(BASE, where), key: 1})
    return Case(
        f"{where} += {key} of {donor}",
        config,
        f"{where}.{key}",
        "valid: " + ", ".join(sorted(own)),
    )


def _structural() -> list[Case]:
    no_source = copy.deepcopy(BASE)
    for d in no_source["domains"]:
        d["role"] = "target"
    all_unseen = copy.deepcopy(BASE)
    for d in all_unseen["domains"]:
        d["role"] = "unseen"
        d.pop("label_fraction", None)
    dupes = copy.deepcopy(BASE)
    dupes["domains"][1]["alias"] = "sklearn.wine"
    same = copy.deepcopy(BASE)
    same["domains"][1] = {"name": "sklearn.wine", "role": "source"}
    fraction_on_source = _set(BASE, "domains.0.label_fraction", 0.5)
    return [
        Case("no domains", _set(BASE, "domains", []), "domains"),
        Case("no losses", _set(BASE, "losses", []), "losses"),
        Case("every domain a target", no_source, "domains"),
        Case("every domain unseen", all_unseen, "domains"),
        Case("alias clashing with a name", dupes, "domains"),
        Case("duplicate domain names", same, "domains"),
        Case("label_fraction on a source", fraction_on_source, "domains.0"),
        Case("student checkpoint", _set(BASE, "student.checkpoint", "t.safetensors"), "student"),
        Case("trunk that is no trunk", _set(BASE, "teacher.trunk.name", "cnn"), "teacher.trunk"),
        Case(
            "graph loss without a graph encoder",
            _set(BASE, "losses.1", {"name": "graph"}),
            "losses.1",
        ),
    ]


structural_cases = st.sampled_from(_structural())
config_cases = st.one_of(
    leaf_cases,
    node_cases,
    unknown_key_cases(),
    unknown_name_cases(),
    foreign_params_cases(),
    structural_cases,
)


# -- checks -----------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _builtins_only():
    """Installed plugins stay out (the CLI host loads entry points)."""
    from cdkd_core.host import plugin_host as plugins

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plugins, "entry_points", lambda group: [])
        yield


def _assert_refused(result: Any, case: Case | None = None) -> str:
    output = result.output
    what = case.what if case else "raw YAML"
    assert result.exit_code == 2, f"{what}: exit {result.exit_code}\n{output}"
    assert "Traceback" not in output, f"{what}:\n{output}"
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), f"{what}: {result.exception!r}"
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, f"{what}: {len(errors)} error lines\n{output}"
    assert output.startswith("error:"), f"{what}: output before the error\n{output}"
    if case is not None:
        assert case.path in output, f"{what}: {case.path!r} not named\n{output}"
        if case.choices:
            assert case.choices in output, f"{what}: choices {case.choices!r} missing\n{output}"
    return output


def _write(directory: Path, config: Any) -> Path:
    path = directory / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def test_the_base_config_is_valid() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        result = runner.invoke(app, ["validate", str(_write(Path(tmp), BASE))])
    assert result.exit_code == 0, result.output


@FUZZ
@given(case=config_cases)
def test_validate_refuses_every_broken_config(case: Case) -> None:
    TRIED["validate"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        result = runner.invoke(app, ["validate", str(_write(Path(tmp), case.config))])
    _assert_refused(result, case)


def _assert_run_refused(config: Any, case: Case) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "runs"
        path = _write(Path(tmp), config)
        result = runner.invoke(app, ["run", str(path), "--output", str(out), "--quiet"])
        _assert_refused(result, case)
        left = list(out.iterdir()) if out.exists() else []
        assert not left, f"{case.what}: left behind {left}"


@settings(FUZZ, max_examples=60)
@given(case=config_cases)
def test_run_refuses_every_broken_config_before_training(case: Case) -> None:
    TRIED["run"] += 1
    _assert_run_refused(case.config, case)


def test_run_refuses_an_unlabelled_target_the_teacher_has_no_head_for() -> None:
    """Known only once the data is loaded (``cdkd validate`` loads no data)."""
    TRIED["run"] += 1
    config = _set(BASE, "domains.1.label_fraction", 0.0)
    case = Case("unlabelled target, no teacher head", config, "domains", "label_fraction 0")
    _assert_run_refused(config, case)


# -- the raw YAML layer -----------------------------------------------------------------------
YAML_TEXTS = [
    "- a\n- b\n",
    "just a string\n",
    "42\n",
    "3.5\n",
    "null\n",
    "",
    "~\n",
    "[1, 2\n",
    "a: [1, 2\n",
    "a: b: c\n",
    "{a: 1\n",
    "domains:\n- name: x\n  role: source\n bad: indent\n",
    "\tdomains: []\n",
    "key: 'unclosed\n",
    "&a [*a]\n",
    "*undefined\n",
    "!!python/object/apply:os.system ['echo pwned > PWNED']\n",
    "!!python/object:cdkd_core.config.models.PipelineConfig {}\n",
    "domains: !!python/name:os.system\n",
    "domains: !!binary |\n  AAAA\n",
    "!custom_tag {a: 1}\n",
    "%YAML 9.9\n---\na: 1\n",
    "---\na: 1\n---\nb: 2\n",
]
BAD_BYTES = [b"\xff\xfe\x00a", b"name: caf\xe9\n", b"\x80\x81\x82", b"domains: []\n\xc3\x28"]


@st.composite
def raw_files(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["text", "bytes", "random", "prefixed"]))
    if kind == "text":
        return draw(st.sampled_from(YAML_TEXTS)).encode()
    if kind == "bytes":
        return draw(st.sampled_from(BAD_BYTES))
    if kind == "prefixed":  # a valid config after a non-UTF-8 byte
        return (
            draw(st.sampled_from([b"\xff", b"\xc0", b"\xfe\xff"])) + yaml.safe_dump(BASE).encode()
        )
    return draw(st.binary(min_size=1, max_size=64))


@settings(FUZZ, max_examples=250)
@given(data=raw_files())
def test_raw_yaml_is_refused_with_one_line(data: bytes) -> None:
    TRIED["raw yaml"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.yaml"
        path.write_bytes(data)
        result = runner.invoke(app, ["validate", str(path)], catch_exceptions=True)
        assert not (Path.cwd() / "PWNED").exists()
        output = _assert_refused(result)
        assert "pipeline.yaml" in output or "domains" in output, output


def test_debug_shows_the_traceback() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), _set(BASE, "train.epochs", 0))
        result = runner.invoke(app, ["--debug", "validate", str(path)])
    assert result.exit_code != 0
    assert result.exception is not None and "train.epochs" in str(result.exception)


def test_zz_report_how_many_malformed_inputs_were_tried(capsys: pytest.CaptureFixture) -> None:
    total = sum(TRIED.values())
    with capsys.disabled():
        print(f"\nmalformed configs / YAML files tried: {total} ({dict(TRIED)})")
    if TRIED:
        assert TRIED["validate"] >= 100 and TRIED["raw yaml"] >= 100
