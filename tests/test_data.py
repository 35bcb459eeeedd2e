"""Split helpers, ``DomainData`` checks and ``prepare_domains`` (standardisation, quiz split,
labelled subsets) with a small in-process domain plugin."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
import torch

from cdkd_core.components.base import ComponentConfig
from cdkd_core.components.domain import Domain, DomainData, Split
from cdkd_core.config.loading import parse_config
from cdkd_core.data.preparation import PreparedDomain, prepare_domains
from cdkd_core.data.splits import cap_examples, stratified_split_indices, stratified_subset_mask
from cdkd_core.errors import DataError
from cdkd_core.host.hookspecs import hookimpl
from cdkd_core.host.plugin_host import PluginHost

torch.set_num_threads(1)


# --------------------------------------------------------------------------- stratified splits


def _labels(counts: dict[int, int], seed: int = 0) -> np.ndarray:
    labels = np.concatenate([np.full(n, c) for c, n in counts.items()])
    return np.random.default_rng(seed).permutation(labels)


def test_split_indices_are_disjoint_sorted_and_cover_everything() -> None:
    labels = _labels({0: 50, 1: 30, 2: 20})
    parts = stratified_split_indices(labels, 0.2, 0.1, seed=3)
    assert set(parts) == {"train", "val", "test"}
    joined = np.concatenate(list(parts.values()))
    assert len(joined) == len(labels)
    assert sorted(joined.tolist()) == list(range(len(labels)))
    for idx in parts.values():
        assert np.all(np.diff(idx) > 0)


def test_split_indices_follow_the_fractions_per_class() -> None:
    counts = {0: 50, 1: 30, 2: 20}
    labels = _labels(counts)
    parts = stratified_split_indices(labels, 0.2, 0.1, seed=0)
    for cls, n in counts.items():
        n_val = int((labels[parts["val"]] == cls).sum())
        n_test = int((labels[parts["test"]] == cls).sum())
        n_train = int((labels[parts["train"]] == cls).sum())
        assert n_val == round(n * 0.2)
        assert n_test == round(n * 0.1)
        assert n_train == n - n_val - n_test


def test_split_indices_small_classes() -> None:
    labels = np.array([0] * 3 + [1] * 2 + [2] * 1 + [3] * 10)
    parts = stratified_split_indices(labels, 0.2, 0.2, seed=0)
    per = {k: Counter(labels[v].tolist()) for k, v in parts.items()}
    # three examples: one in each split
    assert (per["train"][0], per["val"][0], per["test"][0]) == (1, 1, 1)
    # every class keeps at least one training example
    assert all(per["train"][c] >= 1 for c in range(4))
    assert per["train"][2] == 1 and per["val"][2] == 0 and per["test"][2] == 0


def test_split_indices_are_deterministic_in_the_seed() -> None:
    labels = _labels({0: 40, 1: 40})
    a = stratified_split_indices(labels, 0.2, 0.2, seed=7)
    b = stratified_split_indices(labels, 0.2, 0.2, seed=7)
    c = stratified_split_indices(labels, 0.2, 0.2, seed=8)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_split_indices_accept_string_labels() -> None:
    labels = np.array(["b", "a"] * 10)
    parts = stratified_split_indices(labels, 0.2, 0.2, seed=0)
    for k in parts:
        assert Counter(labels[parts[k]].tolist())["a"] == Counter(labels[parts[k]].tolist())["b"]


# --------------------------------------------------------------------------- label subsets


def test_subset_mask_zero_and_one() -> None:
    y = torch.tensor([0, 1, 1, 2, 2, 2])
    assert not stratified_subset_mask(y, 0.0, 0).any()
    assert stratified_subset_mask(y, 1.0, 0).all()
    assert stratified_subset_mask(y, 1.0, 0).dtype == torch.bool


def test_subset_mask_is_stratified_with_at_least_one_per_class() -> None:
    y = torch.tensor([0] * 40 + [1] * 20 + [2] * 3)
    mask = stratified_subset_mask(y, 0.25, seed=1)
    counts = Counter(y[mask].tolist())
    assert counts == {0: 10, 1: 5, 2: 1}
    tiny = stratified_subset_mask(y, 0.001, seed=1)
    assert Counter(y[tiny].tolist()) == {0: 1, 1: 1, 2: 1}


def test_subset_mask_is_deterministic_per_seed() -> None:
    y = torch.arange(100) % 4
    a = stratified_subset_mask(y, 0.3, seed=5)
    assert torch.equal(a, stratified_subset_mask(y, 0.3, seed=5))
    assert not torch.equal(a, stratified_subset_mask(y, 0.3, seed=6))


# --------------------------------------------------------------------------- caps


def test_cap_examples_without_a_cap_keeps_everything() -> None:
    labels = _labels({0: 5, 1: 5})
    np.testing.assert_array_equal(cap_examples(labels, None, 0), np.arange(10))
    np.testing.assert_array_equal(cap_examples(labels, 10, 0), np.arange(10))
    np.testing.assert_array_equal(cap_examples(labels, 500, 0), np.arange(10))


def test_cap_examples_is_stratified_sorted_and_deterministic() -> None:
    labels = _labels({0: 60, 1: 30, 2: 10})
    keep = cap_examples(labels, 50, seed=2)
    assert len(keep) == 50
    assert np.all(np.diff(keep) > 0)
    assert Counter(labels[keep].tolist()) == {0: 30, 1: 15, 2: 5}
    np.testing.assert_array_equal(keep, cap_examples(labels, 50, seed=2))
    assert not np.array_equal(keep, cap_examples(labels, 50, seed=3))


def test_cap_examples_keeps_rare_classes() -> None:
    labels = np.array([0] * 99 + [1])
    keep = cap_examples(labels, 10, seed=0)
    assert 1 in labels[keep].tolist()


def test_cap_examples_never_exceeds_the_cap() -> None:
    labels = np.array([0] * 15 + [1] * 15)
    keep = cap_examples(labels, 15, seed=0)
    assert len(keep) <= 15
    labels = np.array([0] * 3 + [1] * 3)
    assert len(cap_examples(labels, 3, seed=0)) <= 3


# --------------------------------------------------------------------------- DomainData


def _split(n: int, classes: int = 2, features: int = 3) -> Split:
    return Split.single_view(torch.randn(n, features), torch.arange(n) % classes)


def test_domain_data_accepts_a_valid_domain() -> None:
    data = DomainData("tabular", "t", ["a", "b"], {s: _split(6) for s in ("train", "val", "test")})
    assert data.num_classes == 2
    assert data.metrics == ["accuracy"]
    assert data.input_space is None
    assert data.splits["train"].y.dtype == torch.long


def test_domain_data_feature_names_name_each_entry() -> None:
    splits = {s: _split(6) for s in ("train", "val", "test")}  # 3 features
    data = DomainData("tabular", "t", ["a", "b"], splits, feature_names=("x", "y", "job=z"))
    assert data.feature_names == ["x", "y", "job=z"]
    assert DomainData("tabular", "t", ["a", "b"], splits).feature_names is None
    with pytest.raises(ValueError, match="2 feature_names for 3 entries"):
        DomainData("tabular", "t", ["a", "b"], splits, feature_names=["x", "y"])


def test_domain_data_rejects_missing_splits() -> None:
    with pytest.raises(ValueError, match=r"lacks split\(s\) \['test'\]"):
        DomainData("tabular", "t", ["a", "b"], {"train": _split(4), "val": _split(4)})


def test_domain_data_rejects_a_single_class() -> None:
    splits = {s: _split(4, classes=1) for s in ("train", "val", "test")}
    with pytest.raises(ValueError, match="at least two classes"):
        DomainData("tabular", "t", ["only"], splits)


@pytest.mark.parametrize("bad", [-1, 2, 7])
def test_domain_data_rejects_labels_out_of_range(bad: int) -> None:
    splits = {s: _split(4) for s in ("train", "val", "test")}
    splits["val"] = Split.single_view(torch.randn(3, 3), torch.tensor([0, bad, 1]))
    with pytest.raises(ValueError, match=r"split 'val' has labels outside 0\.\.1"):
        DomainData("tabular", "t", ["a", "b"], splits)


def test_domain_data_rejects_empty_splits_and_no_metrics() -> None:
    splits = {s: _split(4) for s in ("train", "val", "test")}
    with pytest.raises(ValueError, match="at least one metric"):
        DomainData("tabular", "t", ["a", "b"], splits, metrics=[])
    splits["test"] = Split.single_view(torch.randn(0, 3), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="split 'test' is empty"):
        DomainData("tabular", "t", ["a", "b"], splits)


def test_split_rejects_views_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        Split(torch.randn(4, 2), torch.randn(3, 2), torch.zeros(4))
    split = Split(torch.randn(4, 2), torch.randn(4, 5), torch.tensor([0, 1, 0, 1]))
    sub = split.subset(torch.tensor([1, 3]))
    assert len(sub) == 2
    assert torch.equal(sub.student_x, split.student_x[[1, 3]])
    assert sub.y.tolist() == [1, 1]


# --------------------------------------------------------------------------- prepare_domains

#: Factories the toy domain returns by key.
FACTORIES: dict[str, Callable[[int], DomainData]] = {}


class ToyConfig(ComponentConfig):
    """Which factory to use."""

    key: str = "basic"


class ToyDomain(Domain):
    """A toy domain whose data come from a factory in this test module."""

    name = "toy.data"
    Config = ToyConfig

    def load(self, seed: int) -> DomainData:
        """The factory's data."""
        return FACTORIES[self.config.key](seed)


class _ToyPlugin:
    @staticmethod
    @hookimpl
    def register_domains(register) -> None:
        register(ToyDomain)


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost(entry_points=False, plugins=[("toy", _ToyPlugin)])


def _raw(n: int, seed: int, classes: int = 2, shape: tuple[int, ...] = (3,)) -> Split:
    g = torch.Generator().manual_seed(seed)
    scale = torch.tensor([1.0, 10.0, 0.1]).reshape(-1, *([1] * (len(shape) - 1)))
    shift = torch.tensor([5.0, -3.0, 100.0]).reshape(-1, *([1] * (len(shape) - 1)))
    x = torch.randn(n, *shape, generator=g) * scale[: shape[0]] + shift[: shape[0]]
    return Split.single_view(x, torch.arange(n) % classes)


def _basic(seed: int) -> DomainData:
    return DomainData(
        "tabular",
        "toy.task",
        ["a", "b", "c"],
        {"train": _raw(60, 1, 3), "val": _raw(15, 2, 3), "test": _raw(15, 3, 3)},
    )


FACTORIES["basic"] = _basic


def _config(*domains: dict, seed: int = 0):
    return parse_config({"seed": seed, "domains": list(domains)})


def _toy(key: str = "basic", **entry) -> dict:
    return {"name": "toy.data", "params": {"key": key}, **entry}


def test_prepared_domain_properties(host: PluginHost) -> None:
    (d,) = prepare_domains(_config(_toy(alias="mine")), host)
    assert isinstance(d, PreparedDomain)
    assert d.name == "mine"
    assert d.role == "source" and d.trained
    assert d.task == "toy.task"
    assert d.space == "toy.data"  # input_space defaults to the registered name
    assert d.modality == "tabular"
    assert d.num_classes == 3
    assert d.headline == "accuracy"
    assert d.quiz is None
    assert d.labelled.all() and len(d.labelled) == len(d.train) == 60


def test_standardisation_uses_train_statistics_only(host: PluginHost) -> None:
    raw = _basic(0)
    (d,) = prepare_domains(_config(_toy()), host)
    train = d.train.teacher_x.double()
    assert torch.allclose(train.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(train.std(0, unbiased=False), torch.ones(3, dtype=torch.float64))
    mean = raw.splits["train"].teacher_x.double().mean(0)
    std = raw.splits["train"].teacher_x.double().std(0, unbiased=False)
    for split in ("train", "val", "test"):
        expected = ((raw.splits[split].teacher_x.double() - mean) / std).float()
        got = getattr(d, split)
        assert torch.allclose(got.teacher_x, expected, atol=1e-5), split
        assert torch.equal(got.student_x, got.teacher_x)
        assert torch.equal(got.y, raw.splits[split].y)
    # val is transformed with train statistics, so it is not itself centred
    assert not torch.allclose(d.val.teacher_x.mean(0), torch.zeros(3), atol=1e-3)


def _hand_stats_check(x_raw_train, x_raw_other, got_other, dims) -> None:
    mean = x_raw_train.double().mean(dim=dims, keepdim=True)
    std = x_raw_train.double().std(dim=dims, keepdim=True, unbiased=False)
    expected = ((x_raw_other.double() - mean) / std).float()
    assert torch.allclose(got_other, expected, atol=1e-5)


def _two_views(seed: int) -> DomainData:
    def split(n: int, s: int) -> Split:
        g = torch.Generator().manual_seed(s)
        teacher = torch.randn(n, 2, 3, 3, generator=g) * torch.tensor([2.0, 0.5])[:, None, None]
        student = torch.randn(n, 4, generator=g) * 3 + 7
        return Split(teacher, student, torch.arange(n) % 2)

    return DomainData(
        "image",
        "views",
        ["x", "y"],
        {"train": split(30, 1), "val": split(10, 2), "test": split(10, 3)},
    )


FACTORIES["two_views"] = _two_views


def test_each_view_is_standardised_per_channel_on_its_own(host: PluginHost) -> None:
    raw = _two_views(0).splits
    (d,) = prepare_domains(_config(_toy("two_views")), host)
    t = d.train.teacher_x.double()
    assert torch.allclose(t.mean(dim=(0, 2, 3)), torch.zeros(2, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(t.std(dim=(0, 2, 3), unbiased=False), torch.ones(2, dtype=torch.float64))
    s = d.train.student_x.double()
    assert torch.allclose(s.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-5)
    for split in ("val", "test"):
        _hand_stats_check(
            raw["train"].teacher_x, raw[split].teacher_x, getattr(d, split).teacher_x, [0, 2, 3]
        )
        _hand_stats_check(
            raw["train"].student_x, raw[split].student_x, getattr(d, split).student_x, [0]
        )


def _constant_and_tokens(seed: int) -> DomainData:
    g = torch.Generator().manual_seed(0)
    splits = {}
    for name in ("train", "val", "test"):
        x = torch.randn(12, 2, generator=g)
        x[:, 1] = 4.0
        tokens = torch.randint(0, 50, (12, 5), generator=g)
        splits[name] = Split(x, tokens, torch.arange(12) % 2)
    return DomainData("tabular", "const", ["a", "b"], splits)


FACTORIES["constant"] = _constant_and_tokens


def test_constant_channels_and_integer_inputs(host: PluginHost) -> None:
    (d,) = prepare_domains(_config(_toy("constant")), host)
    assert torch.isfinite(d.train.teacher_x).all()
    assert torch.equal(d.train.teacher_x[:, 1], torch.zeros(12))
    assert torch.equal(d.val.teacher_x[:, 1], torch.zeros(12))
    raw = _constant_and_tokens(0).splits
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(d, split).student_x, raw[split].student_x)
        assert getattr(d, split).student_x.dtype == torch.int64


def _unstandardised(seed: int) -> DomainData:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 100, (10, 6), generator=g)
    floats = torch.randn(10, 3, generator=g) * 50
    splits = {
        "train": Split.single_view(floats, torch.arange(10) % 2),
        "val": Split.single_view(floats, torch.arange(10) % 2),
        "test": Split.single_view(tokens, torch.arange(10) % 2),
    }
    return DomainData("text", "tok", ["a", "b"], splits, standardize=False)


FACTORIES["raw"] = _unstandardised


def test_standardize_false_leaves_inputs_alone(host: PluginHost) -> None:
    raw = _unstandardised(0)
    (d,) = prepare_domains(_config(_toy("raw")), host)
    assert torch.equal(d.train.teacher_x, raw.splits["train"].teacher_x)
    assert torch.equal(d.test.student_x, raw.splits["test"].student_x)


def _with_bad_value(value: float) -> Callable[[int], DomainData]:
    def make(seed: int) -> DomainData:
        data = _basic(seed)
        x = data.splits["val"].teacher_x.clone()
        x[3, 1] = value
        data.splits["val"] = Split.single_view(x, data.splits["val"].y)
        return data

    return make


FACTORIES["nan"] = _with_bad_value(float("nan"))
FACTORIES["inf"] = _with_bad_value(float("inf"))


@pytest.mark.parametrize("key", ["nan", "inf"])
def test_non_finite_inputs_name_domain_split_and_example(host: PluginHost, key: str) -> None:
    config = _config(_toy(), _toy(key, alias="broken", role="target"))
    with pytest.raises(DataError) as info:
        prepare_domains(config, host)
    msg = str(info.value)
    assert "domain 'broken'" in msg
    assert "val split" in msg
    assert "example 3" in msg
    assert "NaN or infinite" in msg
    assert info.value.exit_code == 2


def _value_error(seed: int) -> DomainData:
    splits = {s: _split(4) for s in ("train", "val", "test")}
    return DomainData("tabular", "t", ["only"], splits)


def _unknown_metric(seed: int) -> DomainData:
    data = _basic(seed)
    data.metrics = ["accuracy", "top5"]
    return data


FACTORIES["value_error"] = _value_error
FACTORIES["unknown_metric"] = _unknown_metric


def test_domain_errors_become_data_errors_naming_the_domain(host: PluginHost) -> None:
    with pytest.raises(DataError) as info:
        prepare_domains(_config(_toy("value_error", alias="odd")), host)
    assert "domain 'odd' (toy.data from plugin 'toy')" in str(info.value)
    assert "at least two classes" in str(info.value)
    with pytest.raises(DataError, match="unknown metric"):
        prepare_domains(_config(_toy("unknown_metric")), host)


def _rows(x: torch.Tensor) -> list[tuple[float, ...]]:
    return [tuple(round(v, 4) for v in row) for row in x.tolist()]


def test_quiz_split_comes_from_source_train_only(host: PluginHost) -> None:
    config = _config(
        _toy(alias="src"), _toy(alias="tgt", role="target", label_fraction=0.5), seed=1
    )
    plain = {d.name: d for d in prepare_domains(config, host)}
    quizzed = {d.name: d for d in prepare_domains(config, host, quiz_fraction=0.2)}

    src, full = quizzed["src"], plain["src"]
    assert src.quiz is not None
    assert len(src.quiz) + len(src.train) == len(full.train) == 60
    quiz_rows, train_rows = set(_rows(src.quiz.teacher_x)), set(_rows(src.train.teacher_x))
    assert not quiz_rows & train_rows
    assert quiz_rows | train_rows == set(_rows(full.train.teacher_x))
    # stratified: 20 per class in train -> 4 per class in quiz
    assert Counter(src.quiz.y.tolist()) == {0: 4, 1: 4, 2: 4}
    # val and test untouched; labelled mask follows the smaller train split
    assert torch.equal(src.val.teacher_x, full.val.teacher_x)
    assert torch.equal(src.test.teacher_x, full.test.teacher_x)
    assert len(src.labelled) == len(src.train) and src.labelled.all()

    tgt = quizzed["tgt"]
    assert tgt.quiz is None
    assert torch.equal(tgt.train.teacher_x, plain["tgt"].train.teacher_x)
    # deterministic
    again = {d.name: d for d in prepare_domains(config, host, quiz_fraction=0.2)}
    assert torch.equal(again["src"].quiz.teacher_x, src.quiz.teacher_x)


def test_no_quiz_for_unseen_domains(host: PluginHost) -> None:
    config = _config(_toy(alias="src"), _toy(alias="un", role="unseen"))
    domains = {d.name: d for d in prepare_domains(config, host, quiz_fraction=0.3)}
    assert domains["un"].quiz is None
    assert not domains["un"].trained


@pytest.mark.parametrize(("fraction", "per_class"), [(0.5, 10), (0.1, 2), (0.01, 1), (0.0, 0)])
def test_label_fraction_mask_is_stratified(
    host: PluginHost, fraction: float, per_class: int
) -> None:
    config = _config(_toy(alias="src"), _toy(alias="tgt", role="target", label_fraction=fraction))
    src, tgt = prepare_domains(config, host)
    assert src.labelled.all()
    assert tgt.labelled.dtype == torch.bool and len(tgt.labelled) == len(tgt.train)
    counts = Counter(tgt.train.y[tgt.labelled].tolist())
    assert all(counts[c] == per_class for c in range(3))
    again = prepare_domains(config, host)[1]
    assert torch.equal(again.labelled, tgt.labelled)
