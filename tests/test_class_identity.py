"""One class identity per task (cdkd_core.data.class_identity): domains sharing a task are
evaluated against their own labels, mapped by class name to the task's first domain's
order, or refused; and a target no teacher stem reads is warned about."""

from __future__ import annotations

import html
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field

from cdkd_core import ComponentConfig, Domain, DomainData, Split, hookimpl, load_config
from cdkd_core.artifacts.report import read_run, render_report
from cdkd_core.cli.app import print_summary
from cdkd_core.data.class_identity import align_classes
from cdkd_core.data.preparation import prepare_domains
from cdkd_core.errors import ConfigError, RunInterrupted
from cdkd_core.files import load_weights
from cdkd_core.host.plugin_host import PluginHost
from cdkd_core.run.runner import resume_run, run_pipeline
from tests.stopping import Watching

TRIED = {"prepared": 0, "refused": 0, "mapped": 0, "end_to_end": 0}


# -- a tiny in-process domain whose inputs say which class (by name) each example is -----------
class Named(Domain):
    """Blobs: the example of class name ``c`` sits at ``3 * onehot(universe.index(c))`` plus
    noise, so its features name its class whatever the class order of the domain."""

    name = "testing.named"

    class Config(ComponentConfig):
        """Class names in order, the names that fix the input features, task and space."""

        classes: list[str] = Field(min_length=2)
        universe: list[str] = Field(min_length=2)
        task: str = "shared"
        space: str = "blobs"
        per_class: int = Field(30, ge=6)
        noise_seed: int = 0

    def load(self, seed: int) -> DomainData:
        """Stratified splits, 60/20/20, of ``per_class`` examples per class."""
        cfg = self.config
        rng = np.random.default_rng(cfg.noise_seed)
        xs, ys = [], []
        for code, name in enumerate(cfg.classes):
            x = rng.normal(0.0, 0.3, (cfg.per_class, len(cfg.universe)))
            x[:, cfg.universe.index(name)] += 3.0
            xs.append(x)
            ys.append(np.full(cfg.per_class, code))
        x, y = np.concatenate(xs), np.concatenate(ys)
        order = rng.permutation(len(y))
        x, y = torch.as_tensor(x[order], dtype=torch.float32), torch.as_tensor(y[order])
        index: dict[str, list[int]] = {"train": [], "val": [], "test": []}
        for code in range(len(cfg.classes)):
            rows = torch.nonzero(y == code).flatten().tolist()
            cut1, cut2 = int(0.6 * len(rows)), int(0.8 * len(rows))
            index["train"] += rows[:cut1]
            index["val"] += rows[cut1:cut2]
            index["test"] += rows[cut2:]
        return DomainData(
            modality="tabular",
            task=cfg.task,
            classes=list(cfg.classes),
            splits={k: Split.single_view(x[v], y[v]) for k, v in index.items()},
            input_space=cfg.space,
        )


def true_names(split: Split, universe: list[str]) -> list[str]:
    """The class name each example's (raw) features encode."""
    return [universe[int(i)] for i in split.teacher_x.argmax(1)]


class _Plugin:
    @hookimpl
    def register_domains(self, register) -> None:
        register(Named)


HOST = PluginHost(entry_points=False, plugins=[("testing", _Plugin())])


def _domain(alias: str, role: str, classes: list[str], universe: list[str], **params) -> dict:
    return {
        "name": "testing.named",
        "alias": alias,
        "role": role,
        "params": {"classes": classes, "universe": universe, **params},
    }


def _config(domains: list[dict], epochs: int = 8) -> dict:
    return {
        "name": "classes",
        "seed": 0,
        "domains": domains,
        "teacher": {"trunk": {"name": "mlp", "params": {"width": 16, "depth": 1}}},
        "student": {"trunk": {"name": "mlp", "params": {"width": 8, "depth": 1}}},
        "encoder": {"name": "pca", "params": {"dim": 2}},
        "losses": [{"name": "ce"}, {"name": "kd", "params": {"temperature": 2.0}}],
        # class identity does not depend on the teacher gate: no second student pass
        "train": {
            "epochs": epochs,
            "batch_size": 32,
            "lr": 0.03,
            "device": "cpu",
            "teacher_gate": "none",
        },
    }


# -- the mechanism on its own -------------------------------------------------------------------
def _data(task: str, classes: list[str], y: list[int]) -> DomainData:
    x = torch.zeros(len(y), 1)
    split = Split.single_view(x, torch.tensor(y))
    return DomainData("tabular", task, classes, {"train": split, "val": split, "test": split})


def test_same_classes_in_the_same_order_pass_untouched() -> None:
    a, b = _data("t", ["x", "y"], [0, 1]), _data("t", ["x", "y"], [1, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = align_classes([("a", a), ("b", b)])
    assert out == [(a, None), (b, None)]


def test_another_order_is_mapped_by_name_and_said_once() -> None:
    a = _data("diagnosis", ["malignant", "benign"], [0, 1])
    b = _data("diagnosis", ["benign", "malignant"], [0, 0, 1])
    with pytest.warns(UserWarning) as caught:
        (_, (mapped, note)) = align_classes([("a", a), ("b", b)])
    assert len(caught) == 1 and str(caught[0].message) == note
    assert "'b'" in note and "'a'" in note and "'diagnosis'" in note
    assert "['benign', 'malignant']" in note and "['malignant', 'benign']" in note
    assert mapped.classes == ["malignant", "benign"]
    for split in mapped.splits.values():  # benign was 0, is now 1; malignant 1 -> 0
        assert split.y.tolist() == [1, 1, 0]
    assert b.classes == ["benign", "malignant"]  # the loaded data is not changed in place


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [
        (["benign", "malignant"], ["no", "yes"], "in one only"),
        (["0", "1"], ["0", "1", "2"], "2 classes vs 3"),
        (["a", "b", "a"], ["a", "a", "b"], "listed twice"),
        (["1", "2"], ["1.0", "2.0"], "in one only"),  # names compare exactly, as strings
    ],
)
def test_other_names_are_refused_naming_both_domains_and_lists(a, b, why) -> None:
    first, second = _data("t", a, [0, 1]), _data("t", b, [0, 1])
    with pytest.raises(ConfigError) as info:
        align_classes([("site_a", first), ("site_b", second)])
    message = str(info.value)
    assert "\n" not in message
    for part in ("domains.1", "'site_a'", "'site_b'", "task 't'", str(a), str(b), why, "`task`"):
        assert part in message, part


def test_tasks_are_aligned_separately_first_domain_of_each_fixes_its_order() -> None:
    domains = [
        ("a", _data("t1", ["p", "q"], [0, 1])),
        ("b", _data("t2", ["r", "s"], [0, 1])),
        ("c", _data("t2", ["s", "r"], [0, 1])),
        ("d", _data("t1", ["p", "q"], [1, 0])),
    ]
    with pytest.warns(UserWarning, match="'c'"):
        out = align_classes(domains)
    assert [d.classes for d, _ in out] == [["p", "q"], ["r", "s"], ["r", "s"], ["p", "q"]]
    assert [note is not None for _, note in out] == [False, False, True, False]
    assert out[2][0].splits["test"].y.tolist() == [1, 0]


# -- the case: a CSV labelled benign/malignant beside sklearn.breast_cancer -------------
def _breast_cancer_csv(path: Path) -> Path:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    names = [str(n) for n in bunch.target_names]  # ['malignant', 'benign']
    # the twin names its columns as scikit-learn does: a shared input space needs the same
    # feature names (DomainData.feature_names, checked when the domains load)
    header = [str(n) for n in bunch.feature_names] + ["diagnosis"]
    lines = [",".join(header)]
    lines += [
        ",".join(f"{v:.6g}" for v in row) + f",{names[t]}"
        for row, t in zip(bunch.data, bunch.target, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_tabular_twin_of_breast_cancer_is_not_flipped(tmp_path, host, capsys) -> None:
    csv = _breast_cancer_csv(tmp_path / "bc.csv")
    task = space = "sklearn.breast_cancer"
    cfg = _config(
        [
            {"name": "sklearn.breast_cancer", "role": "source"},
            {
                "name": "tabular",
                "alias": "clinic",
                "role": "target",
                "label_fraction": 0.1,
                "params": {
                    "path": str(csv),
                    "label": "diagnosis",
                    "task": task,
                    "input_space": space,
                    "metrics": ["roc_auc", "accuracy"],
                },
            },
        ],
        epochs=5,
    )
    with pytest.warns(UserWarning, match=r"'clinic'.*mapped by name") as caught:
        result = run_pipeline(load_config(cfg, host=host), output=tmp_path / "runs", host=host)
    (note,) = [str(w.message) for w in caught if "mapped by name" in str(w.message)]
    assert "['benign', 'malignant']" in note and "['malignant', 'benign']" in note
    clinic = result.summary["domains"]["clinic"]
    # the teacher never saw the CSV: a flipped label order would give ROC-AUC near 0.05
    assert clinic["teacher"] > 0.9 and clinic["student"] > 0.9 and clinic["baseline"] > 0.9
    assert result.summary["warnings"] == [note]
    layout = json.loads((result.run_dir / "layout.json").read_text())
    assert layout["domains"]["clinic"]["classes"] == ["malignant", "benign"]
    assert layout["domains"]["sklearn.breast_cancer"]["classes"] == ["malignant", "benign"]
    print_summary(result.summary, result.run_dir)
    assert f"warning: {note}" in capsys.readouterr().out


def test_cdkd_run_refuses_a_twin_with_other_class_names(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from cdkd_core.cli import app

    csv = _breast_cancer_csv(tmp_path / "bc.csv")
    text = csv.read_text().replace(",malignant\n", ",yes\n").replace(",benign\n", ",no\n")
    csv.write_text(text)
    cfg = _config(
        [
            {"name": "sklearn.breast_cancer", "role": "source"},
            {
                "name": "tabular",
                "alias": "clinic",
                "role": "target",
                "params": {"path": str(csv), "label": "diagnosis", "task": "sklearn.breast_cancer"},
            },
        ]
    )
    (tmp_path / "p.yaml").write_text(json.dumps(cfg))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", "p.yaml", "--quiet", "--output", "runs"])
    assert result.exit_code == 2, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert "domains.1: domain 'clinic' shares task 'sklearn.breast_cancer'" in line
    assert "['malignant', 'benign']" in line and "['no', 'yes']" in line
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_resumed_run_maps_the_labels_as_the_first_did(tmp_path) -> None:
    universe = ["cat", "dog", "eel"]
    cfg = _config(
        [
            _domain("a", "source", ["cat", "dog", "eel"], universe),
            _domain("b", "target", ["eel", "cat", "dog"], universe, noise_seed=1),
        ],
        epochs=3,
    )
    with pytest.warns(UserWarning, match="mapped by name"):
        reference = run_pipeline(load_config(cfg, host=HOST), output=tmp_path / "ref", host=HOST)
    seen = {"n": 0}

    def stopping(state):
        seen["n"] += 1
        if seen["n"] == 4:  # in the baseline stage
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted), pytest.warns(UserWarning, match="mapped by name"):
        run_pipeline(
            load_config(cfg, host=HOST),
            output=tmp_path / "stop",
            host=HOST,
            checkpointer=Watching(stopping),
        )
    (run_dir,) = (tmp_path / "stop").iterdir()
    with pytest.warns(UserWarning, match="mapped by name"):
        resumed = resume_run(run_dir, host=HOST)
    timing = {"wall_s", "latency_ms_per_sample", "latency_ms_per_sample_batch1", "teacher_cache"}
    strip = lambda s: {k: v for k, v in s.items() if k not in timing}  # noqa: E731
    assert strip(resumed.summary) == strip(reference.summary)
    assert resumed.summary["domains"]["b"]["teacher"] > 0.9


def test_a_teacher_checkpoint_with_another_class_order_is_refused(tmp_path) -> None:
    universe = ["x", "y"]
    first = run_pipeline(
        load_config(_config([_domain("a", "source", ["x", "y"], universe)], epochs=1), host=HOST),
        output=tmp_path / "first",
        host=HOST,
    )
    checkpoint = str(first.run_dir / "teacher.safetensors")
    for classes, fits in ((["x", "y"], True), (["y", "x"], False)):
        cfg = _config([_domain("a", "source", classes, universe)], epochs=1)
        cfg["teacher"]["checkpoint"] = checkpoint
        out = tmp_path / "-".join(classes)
        if fits:
            run_pipeline(load_config(cfg, host=HOST), output=out, host=HOST)
            continue
        with pytest.raises(ConfigError, match=r"teacher.checkpoint: .*\['x', 'y'\].*\['y', 'x'\]"):
            run_pipeline(load_config(cfg, host=HOST), output=out, host=HOST)
        assert not any(out.iterdir())  # refused before anything was written


# -- item 5: a target no teacher stem reads ----------------------------------------------------
def test_a_target_no_teacher_stem_reads_is_warned_about(tiny_config, tmp_path, host, capsys):
    tiny_config["domains"] = [
        {"name": "sklearn.wine", "role": "source"},
        {"name": "sklearn.iris", "role": "target", "label_fraction": 0.5},
    ]
    with pytest.warns(UserWarning, match="no teacher knowledge") as caught:
        result = run_pipeline(load_config(tiny_config, host=host), output=tmp_path, host=host)
    (line,) = [str(w.message) for w in caught if "no teacher knowledge" in str(w.message)]
    assert "'sklearn.iris'" in line and "input space 'sklearn.iris'" in line
    assert "['sklearn.wine']" in line and "`input_space`" in line
    assert result.summary["warnings"] == [line]
    assert result.summary["domains"]["sklearn.iris"]["teacher"] is None
    print_summary(result.summary, result.run_dir)
    assert f"warning: {line}" in capsys.readouterr().out
    assert html.escape(line) in render_report(read_run(result.run_dir), host)


def test_no_warning_when_every_target_has_a_teacher_stem(tiny_config, tmp_path, host):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        result = run_pipeline(load_config(tiny_config, host=host), output=tmp_path, host=host)
    assert result.summary["warnings"] == []


# -- the property: refuse, or evaluate every domain against its own labels ---------------------
NAME = st.one_of(
    st.text(min_size=1, max_size=6),
    st.sampled_from(["0", "1", "2", "yes", "no", "Yes", "benign", "malignant", " a", "a "]),
    st.integers(-3, 12).map(str),
)


@st.composite
def pairs(draw, alphabet=NAME):
    """(classes of the first domain, classes of the second, the names of both): the second
    a reordering of the first, or one with a name changed, added or dropped."""
    k = draw(st.integers(2, 4))
    first = draw(st.lists(alphabet, min_size=k, max_size=k, unique=True))
    kind = draw(st.sampled_from(["reorder"] * 3 + ["rename", "add", "drop"]))
    second = list(draw(st.permutations(first)))
    if kind == "rename":
        second[draw(st.integers(0, k - 1))] = draw(alphabet.filter(lambda n: n not in first))
    elif kind == "add":
        second.insert(draw(st.integers(0, k)), draw(alphabet.filter(lambda n: n not in first)))
    elif kind == "drop" and k > 2:
        second.pop(draw(st.integers(0, k - 1)))
    universe = sorted(set(first) | set(second))
    return first, second, universe


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(pair=pairs(), roles=st.sampled_from(["source", "target", "unseen"]))
def test_prepared_labels_keep_their_class_names(pair, roles) -> None:
    first, second, universe = pair
    cfg = load_config(
        _config(
            [
                _domain("a", "source", first, universe),
                _domain("b", roles, second, universe, noise_seed=1),
            ]
        ),
        host=HOST,
    )
    TRIED["prepared"] += 1
    if sorted(first) != sorted(second):
        with pytest.raises(ConfigError) as info:
            prepare_domains(cfg, HOST)
        message = str(info.value)
        assert "'a'" in message and "'b'" in message and "'shared'" in message
        assert str(first) in message and str(second) in message
        TRIED["refused"] += 1
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        domains = prepare_domains(cfg, HOST)
    mapped = [str(w.message) for w in caught if "mapped by name" in str(w.message)]
    assert len(mapped) == (first != second)
    TRIED["mapped"] += bool(mapped)
    for d in domains:
        assert d.data.classes == first  # the first domain fixes the order
        assert d.notes == (mapped if d.name == "b" else [])
        for split_name in ("train", "val", "test"):
            raw, prepared = d.data.splits[split_name], getattr(d, split_name)
            assert torch.equal(prepared.y, raw.y)
            names = [d.data.classes[int(c)] for c in prepared.y]
            assert names == true_names(raw, universe), (d.name, split_name)


@settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    pair=pairs(st.sampled_from(["a", "b", "c", "no", "yes", "0", "1", "Z z"])).filter(
        lambda p: sorted(p[0]) == sorted(p[1]) and p[0] != p[1]
    ),
    fraction=st.sampled_from([0.2, 1.0]),
)
def test_end_to_end_every_domain_is_scored_against_its_own_labels(tmp_path_factory, pair, fraction):
    first, second, universe = pair
    cfg = _config(
        [
            _domain("a", "source", first, universe),
            {**_domain("b", "target", second, universe, noise_seed=1), "label_fraction": fraction},
        ]
    )
    out = tmp_path_factory.mktemp("run")
    with pytest.warns(UserWarning, match="mapped by name"):
        result = run_pipeline(load_config(cfg, host=HOST), output=out, host=HOST)
    TRIED["end_to_end"] += 1
    domains = result.summary["domains"]
    # the teacher learned 'a' alone: on 'b' it is right only if b's labels were mapped
    # (a flipped order scores near 0 on these separable blobs)
    for name in ("a", "b"):
        for who in ("teacher", "student", "baseline"):
            assert domains[name][who] > 0.9, (name, who, domains[name])
    layout = json.loads((result.run_dir / "layout.json").read_text())
    assert layout["domains"]["a"]["classes"] == layout["domains"]["b"]["classes"] == first
    # the saved test labels and predictions, read back as names through layout.json, are
    # the names the examples' own features carry
    predictions = load_weights(result.run_dir / "predictions.safetensors")
    for entry in cfg["domains"]:
        name = entry["alias"]
        raw = Named.from_params(entry["params"]).load(0).splits["test"]  # as loaded, unmapped
        truth = true_names(raw, universe)
        classes = layout["domains"][name]["classes"]
        assert [classes[int(c)] for c in predictions[f"{name}/labels"]] == truth
        for who in ("teacher", "student"):
            guessed = [classes[int(c)] for c in predictions[f"{name}/{who}"].argmax(1)]
            assert np.mean([g == t for g, t in zip(guessed, truth, strict=True)]) > 0.9


def test_report_tried_inputs() -> None:
    """Prints how many generated inputs the properties above tried (pytest -s)."""
    print(f"class identity properties tried: {TRIED}")
