"""Property-based fuzzing of bad configs through the CLI.

A valid config (``TINY`` with every optional field spelled out) is broken in one place at a
time — a leaf of the wrong type or out of range, an unknown key, an unknown component, the
params of another component, a structural problem — and ``cdkd validate`` (and, on a smaller
sample, ``cdkd run``) must refuse it with exit code 2, exactly one ``error:`` line naming
the broken field (and the valid choices where the set is closed), no traceback, and no run
directory left behind. The raw YAML layer (bytes, non-UTF-8, non-mappings, bad syntax,
python tags) is fuzzed the same way, and so is the YAML structure: the valid config written
out in random block/flow styles with a duplicate key at a random level, nesting of random
depth on both sides of the limit, an alias bomb on both sides of the values limit, or none
of these, plus valid anchors and aliases (and merges) of equal values, which must still
validate.
"""

from __future__ import annotations

import copy
import math
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
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
from cdkd_core.config import yaml_reader
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
#: the YAML structures tried, by kind (reported by the last test)
SHAPES: Counter[str] = Counter()

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
    "# comments only\n",
    "domains: []\ndomains: []\n",
    "[" * 5000,
    "a: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
    "- " * 2000 + "x\n",
    "a: &a ["
    + "x, " * 20
    + "]\n"
    + "".join(
        f"{c}: &{c} [" + f"*{p}, " * 20 + "]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True)
    ),
    "a: &a {b: *a}\n",
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


# -- YAML structure: nesting, duplicate keys, anchors and aliases ------------------------------
@dataclass
class Node:
    """A YAML node as the emitter below writes it (block or flow, with an anchor, or an
    alias, optionally as a merge ``{<<: *a}``)."""

    kind: str  # "map" (value: [(key, Node)]), "seq" (value: [Node]), "scalar" or "alias"
    value: Any
    anchor: str | None = None
    flow: bool = False
    merge: bool = False


def _tree(value: Any) -> Node:
    if isinstance(value, dict):
        return Node("map", [(k, _tree(v)) for k, v in value.items()])
    if isinstance(value, list):
        return Node("seq", [_tree(v) for v in value])
    return Node("scalar", value)


def _scalar(value: Any) -> str:
    return yaml.safe_dump([value], default_flow_style=True, width=10**6).strip()[1:-1]


def _key(key: str) -> str:
    """A key as written: quoted where YAML would read it as no string (``null``, ``on``)."""
    return key if list(yaml.safe_load(f"{key}: 1")) == [key] else _scalar(key)


def _inline(node: Node) -> str:
    anchor = f"&{node.anchor} " if node.anchor else ""
    if node.kind == "alias":
        return f"{{<<: *{node.value}}}" if node.merge else f"*{node.value}"
    if node.kind == "scalar":
        return anchor + _scalar(node.value)
    if node.kind == "map":
        return anchor + "{" + ", ".join(f"{_key(k)}: {_inline(v)}" for k, v in node.value) + "}"
    return anchor + "[" + ", ".join(_inline(v) for v in node.value) + "]"


def _block(node: Node, indent: int = 0) -> list[str]:
    lines, pad = [], " " * indent
    items = node.value if node.kind == "map" else [(None, item) for item in node.value]
    for key, child in items:
        head = f"{pad}{_key(key)}:" if node.kind == "map" else f"{pad}-"
        if child.kind in ("map", "seq") and child.value and not child.flow:
            lines.append(head + (f" &{child.anchor}" if child.anchor else ""))
            lines.extend(_block(child, indent + 2))
        else:
            lines.append(f"{head} {_inline(child)}")
    return lines


def _nodes(node: Node, path: tuple = ()) -> list[tuple[tuple, Node]]:
    """Every node under ``node`` with its path, in document order."""
    found = [(path, node)]
    if node.kind == "map":
        for key, child in node.value:
            found += _nodes(child, (*path, key))
    elif node.kind == "seq":
        for i, child in enumerate(node.value):
            found += _nodes(child, (*path, i))
    return found


def _canonical(node: Node) -> Any:
    if node.kind == "scalar":
        return (type(node.value).__name__, repr(node.value))
    if node.kind == "map":
        return ("map", tuple((k, _canonical(v)) for k, v in node.value))
    if node.kind == "seq":
        return ("seq", tuple(_canonical(v) for v in node.value))
    return ("alias", node.value)


def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def _related(a: tuple, b: tuple) -> bool:
    """One path is the other's or inside it."""
    return a[: len(b)] == b or b[: len(a)] == a


#: mappings an extra key makes invalid with the key's path in the message
EXTRA_KEY_AT = sorted(set(MAPPINGS) | set(PARAM_MAPPINGS))


@dataclass
class Shape:
    """A config written out as YAML text, and what the CLI must say of it."""

    what: str
    text: str = field(repr=False)
    expect: list[str]  # fragments of the error, any one; [] for a valid config
    kind: str = ""  # for the tally: the problem, within or over the limits, with aliases


def _nest(rnd: Any, depth: int) -> Node:
    node = Node("scalar", 1)
    for _ in range(depth):
        node = Node("map", [("deep", node)]) if rnd.random() < 0.5 else Node("seq", [node])
        node.flow = rnd.random() < 0.5
    return node


def _bomb_node(levels: int, width: int) -> tuple[Node, int]:
    """``[&b0 [lol, ...], &b1 [*b0, ...], ...]`` and the values it expands to."""
    level = Node("seq", [Node("scalar", "lol") for _ in range(width)], anchor="b0", flow=True)
    items, count, total = [level], 1 + width, 2 + width
    for i in range(1, levels):
        aliases = [Node("alias", f"b{i - 1}") for _ in range(width)]
        items.append(Node("seq", aliases, anchor=f"b{i}", flow=True))
        count = 1 + width * count
        total += count
    return Node("seq", items, flow=True), total


@st.composite
def shape_of(draw: st.DrawFn, kind: str) -> Shape:
    """BASE written out with random block/flow styles, one structural problem (``kind``: a
    duplicate key, deep nesting, an alias bomb, or none) and a few valid anchors and
    aliases."""
    rnd = draw(st.randoms(use_true_random=False))
    root = _tree(BASE)
    for _, node in _nodes(root)[1:]:
        node.flow = rnd.random() < 0.3
    limit, max_values = yaml_reader.MAX_DEPTH, yaml_reader.MAX_VALUES
    where: tuple = ("-",)  # where the problem is (no valid alias goes in or around it)
    expect: list[str] = []
    what = label = kind
    if kind == "dup":
        maps = [(p, n) for p, n in _nodes(root) if n.kind == "map" and n.value]
        where, node = draw(st.sampled_from(maps))
        key, child = draw(st.sampled_from(node.value))
        again = copy.deepcopy(child) if draw(st.booleans()) else Node("scalar", 7)
        node.value.insert(
            draw(st.integers(node.value.index((key, child)) + 1, len(node.value))), (key, again)
        )
        expect = [f"duplicate key {_dotted((*where, key))!r}"]
        what = f"duplicate {_dotted((*where, key))}"
    elif kind in ("deep", "bomb"):
        at = draw(st.sampled_from(EXTRA_KEY_AT))
        where = tuple(int(p) if p.isdigit() else p for p in at.split(".") if p)
        node = dict((_dotted(p), n) for p, n in _nodes(root))[at]
        key = draw(KEY.filter(lambda k: k not in {k2 for k2, _ in node.value}))
        over = draw(st.booleans())  # both sides of the limit, as often
        if kind == "deep":
            depth = draw(st.integers(limit, limit + 40) if over else st.integers(1, limit - 5))
            value = _nest(rnd, depth)
            nesting = len(where) + 1 + depth  # the root mapping is level 1
            over = nesting > limit
            what = f"{nesting} levels at {at or '(top)'}"
            label = f"deep {'over' if over else 'within'} {limit}"
        else:
            width = draw(st.integers(2, 12))
            fits = max(n for n in range(1, 30) if _bomb_node(n, width)[1] < max_values - 500)
            levels = draw(st.integers(fits + 1, fits + 4) if over else st.integers(1, fits))
            value, values = _bomb_node(levels, width)
            over = values > max_values
            what = f"bomb {width}**{levels} ({values:,} values) at {at or '(top)'}"
            label = f"aliases {'over' if over else 'within'} {max_values:,} values"
        node.value.insert(draw(st.integers(0, len(node.value))), (key, value))
        where = (*where, key)
        fragment = "levels deep, over the limit of" if kind == "deep" else "over the limit of"
        expect = [fragment] if over else [_dotted(where)]
        if kind == "bomb" and abs(values - max_values) < 500:  # the rest of the config counts
            expect = [fragment, _dotted(where)]
    # valid anchors and aliases: a value written once and referred to again where it is equal
    groups: dict[Any, list[tuple[tuple, Node]]] = {}
    for path, node in _nodes(root)[1:]:
        if not _related(path, where):
            groups.setdefault(_canonical(node), []).append((path, node))
    repeated = sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0][0])
    used: list[tuple] = []
    for i in range(draw(st.integers(kind == "none", 4)) if repeated else 0):
        group = draw(st.sampled_from(repeated))
        (first, target), (other, node) = group[0], draw(st.sampled_from(group[1:]))
        if any(_related(first, u) or _related(other, u) for u in used) or target.anchor:
            continue
        used += [first, other]
        target.anchor = f"a{i}"
        node.kind, node.value, node.merge = "alias", target.anchor, False
        node.merge = target.kind == "map" and draw(st.booleans())
        what += f"; {_dotted(other)} = *{target.anchor} ({_dotted(first)})"
    label += " + valid aliases" if used else ""
    return Shape(what, "\n".join(_block(root)) + "\n", expect, label)


def _check_shape(result: Any, shape: Shape) -> None:
    if not shape.expect:
        assert result.exit_code == 0, f"{shape.what}: exit {result.exit_code}\n{result.output}"
        assert "valid" in result.output and "error" not in result.output, result.output
        return
    output = _assert_refused(result, Case(shape.what, None, ""))
    assert any(f in output for f in shape.expect), (
        f"{shape.what}: none of {shape.expect} in\n{output}\n--- YAML:\n{shape.text}"
    )
    lines = [line for line in output.splitlines() if line.strip()]
    if "duplicate key" in output:
        assert re.search(r", line \d+: duplicate key '.+' \(first at line \d+\)", output), output
    assert len(lines) <= 40, f"{shape.what}: {len(lines)} lines of output"


def shapes(bad: bool = False) -> st.SearchStrategy[Shape]:
    """Each kind of problem (and, unless ``bad``, none) as often."""
    kinds = ["dup", "deep", "bomb"] + ([] if bad else ["none"])
    return st.one_of(*(shape_of(kind) for kind in kinds))


#: each example's time is bounded (generously: a bomb must be refused, not expanded)
STRUCTURE = settings(FUZZ, max_examples=80, deadline=timedelta(seconds=10))


@STRUCTURE
@given(shape=shapes())
def test_yaml_structure_is_read_or_refused_with_one_line(shape: Shape) -> None:
    TRIED["structure"] += 1
    SHAPES[shape.kind] += 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.yaml"
        path.write_text(shape.text, encoding="utf-8")
        result = runner.invoke(app, ["validate", str(path)])
    _check_shape(result, shape)


@settings(STRUCTURE, max_examples=12)
@given(shape=shapes(bad=True))
def test_run_refuses_bad_yaml_structure_before_writing(shape: Shape) -> None:
    TRIED["structure run"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "runs"
        path = Path(tmp) / "pipeline.yaml"
        path.write_text(shape.text, encoding="utf-8")
        result = runner.invoke(app, ["run", str(path), "--output", str(out), "--quiet"])
        _check_shape(result, shape)
        left = list(out.iterdir()) if out.exists() else []
        assert not left, f"{shape.what}: left behind {left}"


_BASE_TEXT = yaml.safe_dump(BASE, sort_keys=False)
#: each problem a YAML text can have (issue 26), and what its one error line says
YAML_PROBLEMS: dict[str, tuple[str | None, str]] = {
    "lists 5000 deep": (_BASE_TEXT + "x: " + "[" * 5000 + "]" * 5000 + "\n", "levels deep"),
    "mappings 5000 deep": (
        _BASE_TEXT + "x: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
        "levels deep, over the limit of 64",
    ),
    "duplicate section": (_BASE_TEXT + "train: {epochs: 3}\n", "duplicate key 'train'"),
    "duplicate key in train": (
        _BASE_TEXT.replace("train:\n", "train:\n  epochs: 9\n"),
        "duplicate key 'train.epochs'",
    ),
    "2 MB": (_BASE_TEXT + "# padding\n" * 200_000, "over the limit of 1,048,576 bytes"),
    "alias bomb": (
        _BASE_TEXT.replace("name: tiny", "name: tiny\nx: &x0 [lol, lol, lol, lol, lol, lol]")
        + "".join(f"x{i}: &x{i} [" + f"*x{i - 1}, " * 9 + "]\n" for i in range(1, 10)),
        "over the limit of 100,000 values",
    ),
    "recursive alias": (_BASE_TEXT + "x: &r [1, *r]\n", "inside its own anchor"),
    "empty": ("", "`domains` is required"),
    "comments only": ("# a config\n\n# to be written\n", "`domains` is required"),
    "null": ("null\n", "`domains` is required"),
    "a directory": (None, "a directory, not a config file"),
}


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("problem", sorted(YAML_PROBLEMS))
def test_each_yaml_problem_is_one_error_line(problem: str, command: str) -> None:
    text, expected = YAML_PROBLEMS[problem]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.yaml"
        if text is None:
            path.mkdir()
        else:
            path.write_text(text, encoding="utf-8")
        out = Path(tmp) / "runs"
        args = ["run", str(path), "--output", str(out), "--quiet"] if command == "run" else []
        result = runner.invoke(app, args or ["validate", str(path)])
        output = _assert_refused(result, Case(problem, None, str(path)))
        assert expected in output, output
        assert len(output.splitlines()) == 1, output
        assert not out.exists() or not list(out.iterdir())


def test_the_emitter_writes_base_as_it_is() -> None:
    """The structure fuzzing starts from BASE itself, in any style."""
    import random

    for seed in range(20):
        rnd = random.Random(seed)
        root = _tree(BASE)
        for _, node in _nodes(root)[1:]:
            node.flow = rnd.random() < 0.5
        text = "\n".join(_block(root)) + "\n"
        assert yaml_reader.load_yaml(text, "x") == BASE, text


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
        if SHAPES:
            print(f"YAML structures: {dict(sorted(SHAPES.items()))}")
    if TRIED:
        assert TRIED["validate"] >= 100 and TRIED["raw yaml"] >= 100
        assert TRIED["structure"] >= 50, "hypothesis gave up on YAML structures"
