"""The pipeline config: schema validation, overrides, YAML reading and component checks."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from cdkd_core.config import yaml_reader
from cdkd_core.config.loading import (
    apply_overrides,
    dump_config,
    load_config,
    parse_config,
    read_yaml,
)
from cdkd_core.config.models import PipelineConfig
from cdkd_core.errors import CdkdError, ConfigError
from cdkd_core.host.plugin_host import PluginHost

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost(entry_points=False)


def _base(**extra) -> dict:
    data = {"domains": [{"name": "sklearn.iris"}]}
    data.update(extra)
    return data


def _config_error(data: dict) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert info.value.exit_code == 2
    assert isinstance(info.value, CdkdError)
    return info.value


# --------------------------------------------------------------------------- parse_config


def test_defaults_fill_every_section() -> None:
    cfg = parse_config(_base())
    assert isinstance(cfg, PipelineConfig)
    assert cfg.name == "cdkd"
    assert cfg.seed == 0
    assert cfg.teacher.trunk.name == "mlp"
    assert cfg.teacher.trunk.params == {"width": 128, "depth": 0}
    assert cfg.teacher.stems["tabular"].params == {"dropout": 0.3}
    assert cfg.student.trunk.params == {"width": 32, "depth": 1}
    assert cfg.teacher.feature_layer == "trunk"
    assert set(cfg.teacher.stems) == {"tabular"}
    assert cfg.encoder.name == "pca" and cfg.encoder.params == {"dim": 32}
    assert [(loss.name, loss.weight) for loss in cfg.losses] == [("ce", 1.0), ("kd", 1.0)]
    assert cfg.losses[1].params == {"temperature": 4.0}
    assert cfg.feedback.name == "none"
    assert cfg.train.epochs == 20
    assert cfg.train.teacher_epochs is None
    assert cfg.train.scheduler == "cosine"
    assert cfg.train.device == "auto"
    entry = cfg.domains[0]
    assert entry.role == "source"
    assert entry.weight == 1.0
    assert entry.key == "sklearn.iris"
    assert entry.fraction == 1.0


def test_defaults_are_not_shared_between_configs() -> None:
    a, b = parse_config(_base()), parse_config(_base())
    a.losses.append(a.losses[0])
    assert len(b.losses) == 2


@pytest.mark.parametrize(
    ("data", "path", "valid"),
    [
        (_base(bogus=1), "bogus", "name, seed, domains, teacher"),
        (_base(train={"epochz": 3}), "train.epochz", "epochs, teacher_epochs"),
        (
            {"domains": [{"name": "sklearn.iris", "rol": "source"}]},
            "domains.0.rol",
            "name, alias, role",
        ),
        (
            _base(teacher={"trunk": {"name": "mlp", "parms": {}}}),
            "teacher.trunk.parms",
            "name, params",
        ),
        (
            _base(teacher={"trunk": {"name": "mlp"}, "stems": {"image": {"nam": "cnn"}}}),
            "teacher.stems.image.nam",
            "name, params",
        ),
        (_base(losses=[{"name": "ce", "wieght": 1}]), "losses.0.wieght", "name, params, weight"),
    ],
)
def test_unknown_keys_are_rejected_with_their_path_and_the_valid_keys(
    data: dict, path: str, valid: str
) -> None:
    err = _config_error(data)
    assert f"{path}: unknown key (valid: {valid}" in str(err)


@pytest.mark.parametrize("epochs", [0, -1, -100])
def test_non_positive_epochs_are_rejected(epochs: int) -> None:
    err = _config_error(_base(train={"epochs": epochs}))
    assert "train.epochs" in str(err)


def test_teacher_epochs_and_lr_must_be_positive() -> None:
    assert "train.teacher_epochs" in str(_config_error(_base(train={"teacher_epochs": 0})))
    assert "train.lr" in str(_config_error(_base(train={"lr": 0})))


def test_bad_scheduler_lists_the_choices() -> None:
    err = _config_error(_base(train={"scheduler": "step"}))
    assert "train.scheduler" in str(err)
    assert "cosine" in str(err) and "constant" in str(err)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cuda:"])
def test_bad_device_is_rejected(device: str) -> None:
    assert "train.device" in str(_config_error(_base(train={"device": device})))


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1", "mps"])
def test_good_devices_are_accepted(device: str) -> None:
    assert parse_config(_base(train={"device": device})).train.device == device


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_label_fraction_outside_unit_interval(fraction: float) -> None:
    data = {
        "domains": [
            {"name": "sklearn.iris"},
            {"name": "sklearn.wine", "role": "target", "label_fraction": fraction},
        ]
    }
    err = _config_error(data)
    assert "domains.1.label_fraction" in str(err)


@pytest.mark.parametrize("fraction", [0.0, 0.25, 1.0])
def test_label_fraction_inside_unit_interval_on_a_target(fraction: float) -> None:
    data = {
        "domains": [
            {"name": "sklearn.iris"},
            {"name": "sklearn.wine", "role": "target", "label_fraction": fraction},
        ]
    }
    cfg = parse_config(data)
    assert cfg.domains[1].fraction == fraction
    assert cfg.domains[0].fraction == 1.0


@pytest.mark.parametrize("role", ["source", "unseen"])
def test_label_fraction_on_a_non_target_is_rejected(role: str) -> None:
    data = {
        "domains": [
            {"name": "sklearn.iris"},
            {"name": "sklearn.wine", "role": role, "label_fraction": 0.5},
        ]
    }
    err = _config_error(data)
    assert "domains.1" in str(err)
    assert "label_fraction applies to role 'target' only" in str(err)


def test_bad_role_lists_the_choices() -> None:
    err = _config_error({"domains": [{"name": "sklearn.iris", "role": "teacher"}]})
    assert "domains.0.role" in str(err)
    assert "source" in str(err) and "target" in str(err) and "unseen" in str(err)


def test_duplicate_domain_names_are_rejected_and_an_alias_fixes_it() -> None:
    dup = {"domains": [{"name": "sklearn.iris"}, {"name": "sklearn.iris", "role": "target"}]}
    err = _config_error(dup)
    assert "unique" in str(err) and "sklearn.iris" in str(err) and "alias" in str(err)

    fixed = copy.deepcopy(dup)
    fixed["domains"][1]["alias"] = "iris_b"
    cfg = parse_config(fixed)
    assert [d.key for d in cfg.domains] == ["sklearn.iris", "iris_b"]


def test_an_alias_clashing_with_a_name_is_a_duplicate() -> None:
    data = {
        "domains": [
            {"name": "sklearn.iris", "alias": "sklearn.wine"},
            {"name": "sklearn.wine"},
        ]
    }
    assert "unique" in str(_config_error(data))


def test_unsafe_alias_is_rejected() -> None:
    err = _config_error({"domains": [{"name": "sklearn.iris", "alias": "../x"}]})
    assert "domains.0" in str(err) and "alias" in str(err)


def test_a_source_domain_is_required() -> None:
    data = {
        "domains": [
            {"name": "sklearn.iris", "role": "target"},
            {"name": "sklearn.wine", "role": "unseen"},
        ]
    }
    assert "role 'source'" in str(_config_error(data))


def test_whole_list_checks_name_the_domains_field() -> None:
    no_source = {"domains": [{"name": "sklearn.iris", "role": "target"}]}
    dupes = {"domains": [{"name": "sklearn.iris"}, {"name": "sklearn.iris"}]}
    for data in (no_source, dupes):
        assert "\n  domains: " in str(_config_error(data))
    student = _base(student={"trunk": {"name": "mlp"}, "checkpoint": "x.safetensors"})
    assert "\n  student: " in str(_config_error(student))
    alias = _config_error({"domains": [{"name": "sklearn.iris", "alias": "a b"}]})
    assert "domains.0.alias: " in str(alias)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize("field", ["lr", "weight_decay", "grad_clip"])
def test_non_finite_floats_are_rejected(field: str, value: float) -> None:
    err = _config_error(_base(train={field: value}))
    assert f"train.{field}: " in str(err)


def test_non_finite_component_params_are_rejected(host: PluginHost) -> None:
    data = _base(feedback={"name": "mutual", "params": {"lr": float("inf")}})
    with pytest.raises(ConfigError, match=r"feedback\.params\.lr: .*finite"):
        load_config(data, host=host)


def test_no_domains_is_rejected() -> None:
    assert "domains" in str(_config_error({"domains": []}))
    assert "domains" in str(_config_error({}))


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "-x", "a b", "x" * 129])
def test_unsafe_run_names_are_rejected(name: str) -> None:
    err = _config_error(_base(name=name))
    assert "name" in str(err)
    assert "not a safe run name" in str(err)


@pytest.mark.parametrize("name", ["run1", "My-run_2.v3", "x" * 128])
def test_safe_run_names_are_accepted(name: str) -> None:
    assert parse_config(_base(name=name)).name == name


def test_every_error_is_listed_with_its_source() -> None:
    data = _base(train={"epochs": 0, "batch_size": 0}, seed=-1)
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="my.yaml")
    text = str(info.value)
    assert text.startswith("invalid config (my.yaml):")
    for path in ("train.epochs", "train.batch_size", "seed"):
        assert f"  {path}:" in text


# --------------------------------------------------------------------------- apply_overrides


def test_override_values_are_parsed_as_yaml() -> None:
    data = _base(train={"epochs": 20})
    out = apply_overrides(data, ["train.epochs=3", "train.lr=0.01", "train.patience=null"])
    assert out["train"]["epochs"] == 3 and isinstance(out["train"]["epochs"], int)
    assert out["train"]["lr"] == 0.01 and isinstance(out["train"]["lr"], float)
    assert out["train"]["patience"] is None
    assert data["train"] == {"epochs": 20}, "the input mapping must not be modified"


def test_override_value_may_contain_equals_and_yaml_collections() -> None:
    out = apply_overrides({}, ["name=a=b", "encoder={name: pca, params: {dim: 4}}"])
    assert out["name"] == "a=b"
    assert out["encoder"] == {"name": "pca", "params": {"dim": 4}}


def test_override_creates_nested_mappings() -> None:
    out = apply_overrides(_base(), ["teacher.trunk.params.width=64"])
    assert out["teacher"] == {"trunk": {"params": {"width": 64}}}
    assert out["domains"] == [{"name": "sklearn.iris"}]


def test_override_list_item_by_index() -> None:
    data = _base(losses=[{"name": "ce"}, {"name": "kd", "weight": 1.0}])
    out = apply_overrides(data, ["losses.1.weight=0.5", "domains.0.role=target"])
    assert out["losses"][1] == {"name": "kd", "weight": 0.5}
    assert out["losses"][0] == {"name": "ce"}
    assert out["domains"][0]["role"] == "target"


def test_override_replaces_a_whole_list_item() -> None:
    out = apply_overrides(_base(), ["domains.0=sklearn.wine"])
    assert out["domains"] == ["sklearn.wine"]


@pytest.mark.parametrize("item", ["losses.2.weight=1", "losses.x.weight=1", "losses.-1.weight=1"])
def test_override_bad_list_index(item: str) -> None:
    data = _base(losses=[{"name": "ce"}, {"name": "kd"}])
    with pytest.raises(ConfigError) as info:
        apply_overrides(data, [item])
    assert "not an index of a list of 2" in str(info.value)
    assert info.value.exit_code == 2


def test_override_without_equals_sign() -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(_base(), ["train.epochs"])
    assert "KEY.PATH=VALUE" in str(info.value)


def test_override_with_empty_key_path() -> None:
    with pytest.raises(ConfigError, match="empty key path"):
        apply_overrides(_base(), ["=3"])


def test_override_inside_a_scalar() -> None:
    with pytest.raises(ConfigError, match="non-mapping"):
        apply_overrides(_base(name="x"), ["name.first=3"])


def test_override_with_invalid_yaml_value() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        apply_overrides(_base(), ["name=[1, 2"])


def test_load_config_applies_overrides_before_validation(host: PluginHost) -> None:
    data = _base(encoder={"name": "pca"})
    cfg = load_config(data, ["train.epochs=3", "encoder.params.dim=4"], host=host)
    assert cfg.train.epochs == 3
    assert cfg.encoder.params == {"dim": 4}
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        load_config(_base(), ["train.epochs=0"], host=host)


# --------------------------------------------------------------------------- read_yaml


def test_read_yaml_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        read_yaml(tmp_path / "nope.yaml")
    assert "config file not found" in str(info.value)
    assert "nope.yaml" in str(info.value)


def test_read_yaml_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("domains: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert "invalid YAML" in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("text", "kind"), [("- 1\n- 2\n", "list"), ("'x'", "str"), ("3", "int")])
def test_read_yaml_non_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert "must be a YAML mapping" in str(info.value)
    assert kind in str(info.value)


def test_read_yaml_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_yaml(path)


def test_read_yaml_refuses_python_tags(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\ndomains: []\n")
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert "invalid YAML" in str(info.value)
    assert not marker.exists()


# ------------------------------------------------- read_yaml: structure, limits (issue 26)
LOADERS = [pytest.param(None, id="default")] + [
    pytest.param(loader, id=loader.__name__)
    for loader in dict.fromkeys([yaml_reader.SafeLoader, yaml_reader.PySafeLoader])
]


def _read(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert info.value.exit_code == 2
    assert str(info.value).startswith(str(path)), info.value
    return info.value


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "null\n", "~\n", "---\n"])
def test_an_empty_config_says_domains_is_required(tmp_path: Path, text: str) -> None:
    message = str(_read(tmp_path, text))
    assert "the config is empty" in message and "`domains` is required" in message


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"a directory, not a config file$"):
        read_yaml(tmp_path)
    (tmp_path / "config.yaml").write_text("domains: []\n")
    with pytest.raises(ConfigError, match=r"a directory, not a config file \(YAML files in it: "):
        read_yaml(tmp_path)


@pytest.mark.parametrize(
    ("text", "key", "lines"),
    [
        (
            "domains: [{name: sklearn.iris}]\ntrain: {epochs: 1}\ntrain: {epochs: 2}\n",
            "train",
            (3, 2),
        ),
        (
            "domains: [{name: sklearn.iris}]\ntrain:\n  epochs: 1\n  lr: 0.1\n  epochs: 2\n",
            "train.epochs",
            (5, 3),
        ),
        (
            "domains:\n  - name: sklearn.iris\n    role: source\n    name: sklearn.wine\n",
            "domains.0.name",
            (4, 2),
        ),
        ("a: 1\nb: {c: {d: 1}}\ntrue: 1\nyes: 2\n", "True", (4, 3)),
    ],
)
@pytest.mark.parametrize("loader", LOADERS)
def test_duplicate_keys_are_refused_with_the_key_and_both_lines(
    tmp_path: Path, text: str, key: str, lines: tuple[int, int], loader: type | None
) -> None:
    with pytest.raises(ConfigError) as info:
        yaml_reader.load_yaml(text, "pipeline.yaml", loader=loader)
    second, first = lines
    assert str(info.value).startswith(
        f"pipeline.yaml, line {second}: duplicate key {key!r} (first at line {first})"
    ), info.value
    if loader is None:
        assert f"duplicate key {key!r}" in str(_read(tmp_path, text))


@pytest.mark.parametrize("loader", LOADERS)
def test_anchors_aliases_and_merge_keys_still_load(host: PluginHost, loader: type | None) -> None:
    text = (
        "domains:\n"
        "  - {name: sklearn.wine, params: &split {split_seed: 3}}\n"
        "  - {name: sklearn.iris, role: target, params: *split}\n"
        "losses:\n"
        "  - {name: ce}\n"
        "  - &kd {name: kd, weight: 0.5, params: {temperature: 2.0}}\n"
        "teacher: &model {trunk: {name: mlp, params: {width: 16, depth: 1}}}\n"
        "student:\n"
        "  <<: *model\n"
        "  trunk: {name: mlp, params: {width: 8, depth: 1}}\n"
    )
    data = yaml_reader.load_yaml(text, "pipeline.yaml", loader=loader)
    assert data == yaml.safe_load(text)
    cfg = load_config(data, host=host)
    assert cfg.domains[1].params == {"split_seed": 3}
    assert cfg.student.trunk.params == {"width": 8, "depth": 1}


@pytest.mark.parametrize("loader", LOADERS)
def test_a_merge_of_a_merge_is_no_duplicate(loader: type | None) -> None:
    """Constructing ``top`` rewrites ``mid``'s node with the keys merged into it: the
    duplicate check reads the document as written."""
    text = "base: &base {a: 1, b: 1}\nx:\n  mid: &mid {<<: *base, a: 2}\ntop: {<<: *mid, c: 3}\n"
    assert yaml_reader.load_yaml(text, "x.yaml", loader=loader) == yaml.safe_load(text)


DEEP = {
    "flow lists": "a: " + "[" * 5000 + "]" * 5000 + "\n",
    "flow mappings": "a: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
    "block": "".join("  " * i + "a:\n" for i in range(300)) + "  " * 300 + "b: 1\n",
    "block lists": "- " * 3000 + "1\n",
    "unclosed": "[" * 200_000,
}


#: PyYAML's Python scanner looks ahead ~1000 levels of ``[[[`` in about a second: the
#: fallback loader is tried on the cheap texts only
SLOW_IN_PYTHON = {"flow lists", "unclosed"}


@pytest.mark.parametrize(
    ("what", "loader"),
    [
        (what, loader)
        for what in sorted(DEEP)
        for loader in (None, yaml_reader.SafeLoader, yaml_reader.PySafeLoader)
        if not (loader is yaml_reader.PySafeLoader and what in SLOW_IN_PYTHON)
    ],
)
def test_deep_nesting_is_refused_with_the_depth_and_the_limit(
    tmp_path: Path, what: str, loader: type | None
) -> None:
    with pytest.raises(ConfigError) as info:
        yaml_reader.load_yaml(DEEP[what], "pipeline.yaml", loader=loader)
    assert "levels deep, over the limit of 64 levels" in str(info.value), info.value
    if loader is None:
        assert "over the limit of 64 levels" in str(_read(tmp_path, DEEP[what]))


@pytest.mark.parametrize("loader", LOADERS)
def test_nesting_up_to_the_limit_is_read(loader: type | None) -> None:
    limit = yaml_reader.MAX_DEPTH
    data = yaml_reader.load_yaml("[" * limit + "]" * limit, "x", loader=loader)
    depth = 0
    while isinstance(data, list):
        data, depth = (data[0] if data else None), depth + 1
    assert depth == limit
    with pytest.raises(ConfigError, match=f"nested {limit + 1} levels deep"):
        yaml_reader.load_yaml("[" * (limit + 1) + "]" * (limit + 1), "x", loader=loader)


def _bomb(levels: int = 9, width: int = 10) -> str:
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "domains: [{name: sklearn.iris}]\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize("loader", LOADERS)
def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path, loader: type | None) -> None:
    """A billion laughs: 10**9 values from a few hundred bytes."""
    with pytest.raises(ConfigError) as info:
        yaml_reader.load_yaml(_bomb(), "pipeline.yaml", loader=loader)
    assert "over the limit of 100,000 values" in str(info.value)
    assert "the alias *l3 stands for 11,111" in str(info.value)
    assert str(info.value).startswith("pipeline.yaml, line 6:")
    if loader is None:
        assert "over the limit of 100,000 values" in str(_read(tmp_path, _bomb()))


@pytest.mark.parametrize("text", ["&a [*a]\n", "domains: &d [{name: x, params: *d}]\n"])
@pytest.mark.parametrize("loader", LOADERS)
def test_an_alias_inside_its_own_anchor_is_refused(text: str, loader: type | None) -> None:
    with pytest.raises(ConfigError, match=r"the alias \*\w is inside its own anchor"):
        yaml_reader.load_yaml(text, "pipeline.yaml", loader=loader)


def test_an_alias_that_nests_past_the_limit_is_refused() -> None:
    text = "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n"
    with pytest.raises(ConfigError, match=r"line 2: the alias \*a nests 71 levels deep"):
        yaml_reader.load_yaml(text, "pipeline.yaml")


def test_too_many_values_are_refused(tmp_path: Path) -> None:
    text = "domains: [{name: sklearn.iris}]\nclasses: [" + "1, " * 150_000 + "]\n"
    assert "over the limit of 100,000 values" in str(_read(tmp_path, text))


def test_an_oversized_config_is_refused_with_its_size_and_the_limit(tmp_path: Path) -> None:
    text = "domains: [{name: sklearn.iris}]\n" + "# padding\n" * 200_000
    message = str(_read(tmp_path, text))
    size = len(text.encode())
    assert f"{size:,} bytes, over the limit of 1,048,576 bytes (1 MiB)" in message


def test_an_override_of_an_aliased_value_changes_that_place_only(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        "domains:\n"
        "  - {name: sklearn.wine, params: &p {split_seed: 1}}\n"
        "  - {name: sklearn.iris, role: target, params: *p}\n"
        "teacher: &m {trunk: {name: mlp, params: {width: 8}}}\n"
        "student: {<<: *m}\n"
    )
    data = apply_overrides(
        read_yaml(path), ["domains.0.params.split_seed=7", "student.trunk.params.width=4"]
    )
    assert [d["params"] for d in data["domains"]] == [{"split_seed": 7}, {"split_seed": 1}]
    assert data["teacher"]["trunk"]["params"] == {"width": 8}
    assert data["student"]["trunk"]["params"] == {"width": 4}


@pytest.mark.parametrize(
    ("text", "where", "read_as"),
    [
        ("train: {on: 1}\n", "train", "True"),
        ("yes: 1\n", "(top level)", "True"),
        ("null: 1\n", "(top level)", "None"),
        ("domains: [{name: sklearn.iris, params: {1: 2}}]\n", "domains.0.params", "1"),
    ],
)
def test_a_key_yaml_reads_as_no_string_is_named(
    tmp_path: Path, text: str, where: str, read_as: str
) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text("domains: [{name: sklearn.iris}]\n" * ("domains" not in text) + text)
    with pytest.raises(ConfigError) as info:
        parse_config(read_yaml(path), str(path))
    assert f"  {where}: a key YAML reads as {read_as}, not a string" in str(info.value)
    assert "quote it" in str(info.value)


def test_the_c_loader_is_used_where_pyyaml_has_it() -> None:
    if yaml.__with_libyaml__:
        assert issubclass(yaml_reader.SafeLoader, yaml.CSafeLoader)
    assert issubclass(yaml_reader.PySafeLoader, yaml.SafeLoader)


@pytest.mark.parametrize("loader", LOADERS)
def test_python_tags_are_still_refused(loader: type | None) -> None:
    with pytest.raises(yaml.YAMLError, match="python/object/apply"):
        yaml_reader.load_yaml("a: !!python/object/apply:os.getcwd []\n", "x", loader=loader)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("train={epochs: 1, epochs: 2}", "duplicate key 'train.epochs'"),
        ("train.epochs=" + "[" * 3000, "levels deep, over the limit of 64 levels"),
        (".".join(["a"] * 100) + "=1", "a key path of 100 keys, over the nesting limit of 64"),
        ("name=" + _bomb().replace("\n", ", ").join("{}"), "over the limit of 100,000 values"),
        ("name=[&a [*a]]", "inside its own anchor"),
        ("name=" + "x" * (2 << 20), "over the limit of 1,048,576 bytes"),
    ],
)
def test_overrides_are_read_within_the_same_limits(item: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(_base(), [item])
    message = str(info.value)
    assert message.startswith("override '") and expected in message, message[:300]
    assert len(message) < 400, "a long override is cut short in the message"


def test_load_config_from_a_yaml_file(tmp_path: Path, host: PluginHost) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "name: fromfile\ndomains:\n  - name: sklearn.wine\ntrain:\n  epochs: 2\n", encoding="utf-8"
    )
    cfg = load_config(path, host=host)
    assert cfg.name == "fromfile"
    assert cfg.train.epochs == 2
    assert cfg.domains[0].name == "sklearn.wine"
    cfg2 = load_config(str(path), ["seed=5"], host=host)
    assert cfg2.seed == 5


def test_load_config_reports_the_file_as_source(tmp_path: Path, host: PluginHost) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("domains:\n  - name: sklearn.wine\ntrian: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, host=host)
    assert str(path) in str(info.value)
    assert "trian: unknown key" in str(info.value)


def test_load_config_without_source_is_the_quickstart(host: PluginHost) -> None:
    cfg = load_config(None, host=host)
    assert cfg.name == "quickstart"
    assert [d.name for d in cfg.domains] == [
        "sklearn.digits",
        "sklearn.wine",
        "sklearn.breast_cancer",
    ]


# --------------------------------------------------------------------------- components


def _component_error(data: dict, host: PluginHost) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(data, host=host)
    assert info.value.exit_code == 2
    return str(info.value)


def test_unknown_encoder_suggests_close_matches(host: PluginHost) -> None:
    msg = _component_error(_base(encoder={"name": "pcaa"}), host)
    assert "encoder.name" in msg
    assert "unknown encoder 'pcaa'" in msg
    assert "did you mean 'pca'" in msg
    assert "available: graph, knowledge_graph, linear, pca" in msg.lower()


def test_unknown_loss_and_domain_suggest_close_matches(host: PluginHost) -> None:
    msg = _component_error(
        {"domains": [{"name": "sklearn.wines"}], "losses": [{"name": "hitn"}]}, host
    )
    assert "domains.0.name: unknown domain 'sklearn.wines'" in msg
    assert "'sklearn.wine'" in msg
    assert "losses.0.name: unknown loss 'hitn'" in msg
    assert "'hint'" in msg


def test_catalogued_but_missing_domain_says_what_to_install(host: PluginHost) -> None:
    msg = _component_error({"domains": [{"name": "medical.nuclei"}]}, host)
    assert "unknown domain 'medical.nuclei'" in msg
    assert "cdkd-medical" in msg
    assert "cdkd plugins install medical" in msg


def test_catalogued_architecture_says_what_to_install(host: PluginHost) -> None:
    msg = _component_error(_base(teacher={"trunk": {"name": "gru"}}), host)
    assert "teacher.trunk.name" in msg
    assert "cdkd-finance" in msg


def test_params_are_validated_against_the_component_config(host: PluginHost) -> None:
    msg = _component_error(_base(encoder={"name": "pca", "params": {"dim": 0}}), host)
    assert "invalid params for encoder 'pca'" in msg
    assert "encoder.params.dim" in msg

    msg = _component_error(_base(encoder={"name": "pca", "params": {"dims": 3}}), host)
    assert "encoder.params.dims: unknown key" in msg
    assert "valid: dim, incremental_above, incremental_batch, whiten" in msg


def test_domain_params_are_validated(host: PluginHost) -> None:
    msg = _component_error(
        {"domains": [{"name": "sklearn.iris", "params": {"val_fraction": 0.9}}]}, host
    )
    assert "domains.0.params.val_fraction" in msg
    msg = _component_error({"domains": [{"name": "tabular"}]}, host)
    assert "domains.0.params.path" in msg and "domains.0.params.label" in msg


def test_architecture_and_feedback_params_are_validated(host: PluginHost) -> None:
    msg = _component_error(
        _base(
            student={"trunk": {"name": "mlp", "params": {"width": 0}}},
            feedback={"name": "mutual", "params": {"rounds": 0}},
        ),
        host,
    )
    assert "student.trunk.params.width" in msg
    assert "invalid params for feedback strategy 'mutual'" in msg
    assert "feedback.params.rounds" in msg


def test_loss_params_error_names_the_kind_loss(host: PluginHost) -> None:
    msg = _component_error(_base(losses=[{"name": "kd", "params": {"temp": 2}}]), host)
    assert "losses.0.params.temp: unknown key" in msg
    assert "invalid params for loss 'kd'" in msg


def test_a_graph_loss_needs_a_graph_encoder(host: PluginHost) -> None:
    data = _base(losses=[{"name": "ce"}, {"name": "graph"}], encoder={"name": "pca"})
    msg = _component_error(data, host)
    assert "losses.1" in msg
    assert "'graph'" in msg and "needs ['graph']" in msg
    assert "'pca' provides only ['vectors']" in msg

    data["encoder"] = {"name": "graph"}
    cfg = load_config(data, host=host)
    assert [loss.name for loss in cfg.losses] == ["ce", "graph"]


def test_vector_losses_work_with_any_encoder(host: PluginHost) -> None:
    for encoder in ("pca", "linear", "graph"):
        data = _base(losses=[{"name": "hint"}, {"name": "relational"}], encoder={"name": encoder})
        assert load_config(data, host=host).encoder.name == encoder


def test_a_non_trunk_architecture_is_refused_as_trunk(host: PluginHost) -> None:
    msg = _component_error(_base(teacher={"trunk": {"name": "cnn"}}), host)
    assert "teacher.trunk.name: architecture 'cnn' is not a trunk" in msg


def test_a_stem_for_the_wrong_modality_is_refused(host: PluginHost) -> None:
    data = _base(
        student={"trunk": {"name": "mlp"}, "stems": {"tabular": {"name": "cnn"}}},
    )
    msg = _component_error(data, host)
    assert "student.stems.tabular.name" in msg
    assert "'cnn' is no stem for modality 'tabular'" in msg
    assert "image" in msg

    data["student"]["stems"] = {"image": {"name": "cnn", "params": {"channels": 4}}}
    assert load_config(data, host=host).student.stems["image"].params == {"channels": 4}


def test_a_head_architecture_is_validated(host: PluginHost) -> None:
    cfg = parse_config(_base())
    assert cfg.teacher.head is None and cfg.student.head is None
    msg = _component_error(_base(student={"trunk": {"name": "mlp"}, "head": {"name": "mpl"}}), host)
    assert "student.head.name: unknown architecture 'mpl'" in msg
    assert "'mlp'" in msg
    msg = _component_error(
        _base(student={"trunk": {"name": "mlp"}, "head": {"name": "mlp", "params": {"depth": -1}}}),
        host,
    )
    assert "student.head.params.depth" in msg
    data = _base(
        student={"trunk": {"name": "mlp"}, "head": {"name": "mlp", "params": {"depth": 1}}}
    )
    assert load_config(data, host=host).student.head.params == {"depth": 1}


def test_all_component_errors_are_reported_together(host: PluginHost) -> None:
    data = _base(
        encoder={"name": "pcaa"},
        feedback={"name": "mutal"},
        teacher={"trunk": {"name": "cnn"}},
    )
    msg = _component_error(data, host)
    assert "encoder.name" in msg
    assert "feedback.name" in msg and "'mutual'" in msg
    assert "teacher.trunk.name" in msg


# --------------------------------------------------------------------------- dump_config


def test_dump_config_round_trips(host: PluginHost, tmp_path: Path) -> None:
    data = {
        "name": "round-trip",
        "seed": 3,
        "domains": [
            {"name": "sklearn.iris", "params": {"split_seed": 2}},
            {"name": "sklearn.wine", "role": "target", "label_fraction": 0.1, "alias": "w"},
        ],
        "student": {
            "trunk": {"name": "mlp", "params": {"width": 16, "depth": 0}},
            "stems": {"image": {"name": "cnn", "params": {"channels": 4}}},
            "head": {"name": "mlp", "params": {"width": 8, "depth": 1}},
        },
        "encoder": {"name": "graph", "params": {}},
        "losses": [{"name": "ce"}, {"name": "graph", "weight": 0.25}],
        "feedback": {"name": "hard_examples", "params": {"rounds": 2}},
        "train": {"epochs": 3, "patience": 2, "grad_clip": None, "scheduler": "constant"},
    }
    cfg = load_config(data, host=host)
    text = dump_config(cfg)
    again = load_config(yaml.safe_load(text), host=host)
    assert again == cfg
    assert dump_config(again) == text

    path = tmp_path / "resolved.yaml"
    path.write_text(text)
    assert load_config(path, host=host) == cfg


def test_validate_refuses_a_missing_teacher_checkpoint(tiny_config, host, tmp_path):
    from cdkd_core import load_config
    from cdkd_core.errors import ConfigError

    tiny_config["teacher"]["checkpoint"] = str(tmp_path / "missing.safetensors")
    with pytest.raises(ConfigError, match=r"teacher\.checkpoint: no such file"):
        load_config(tiny_config, host=host)


# ------------------------------------------------- booleans are not numbers (issue 16, item 10)
@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("train", "epochs"),
        ("train", "lr"),
        ("train", "teacher_epochs"),
        ("train", "threads"),
        ("train", "out_of_core_mb"),
        (None, "seed"),
    ],
)
@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_refused_for_numeric_fields(section: str | None, key: str, value) -> None:
    data = _base(**({section: {key: value}} if section else {key: value}))
    where = f"{section}.{key}" if section else key
    err = _config_error(data)
    assert f"{where}: expected a number, got a boolean ({str(value).lower()})" in str(err)


def test_booleans_are_refused_in_nested_models_too() -> None:
    data = _base(teacher={"trunk": {"name": "mlp"}, "maml": {"algorithm": "reptile"}})
    data["teacher"]["maml"]["inner_lr"] = True
    assert "teacher.maml.inner_lr: expected a number" in str(_config_error(data))
    data = {"domains": [{"name": "sklearn.iris", "weight": True}]}
    assert "domains.0.weight: expected a number" in str(_config_error(data))


def test_booleans_are_refused_for_component_params(host: PluginHost) -> None:
    msg = _component_error(_base(encoder={"name": "pca", "params": {"dim": True}}), host)
    assert "encoder.params.dim: expected a number, got a boolean (true)" in msg
    msg = _component_error(_base(losses=[{"name": "kd", "params": {"temperature": False}}]), host)
    assert "losses.0.params.temperature: expected a number" in msg


def test_a_plugin_config_refuses_booleans_for_numbers_in_containers() -> None:
    import pydantic

    from cdkd_core.components.base import ComponentConfig

    class Config(ComponentConfig):  # as a plugin would write it
        widths: list[int] = [8]
        scale: dict[str, float] = {}
        pair: tuple[int, float] = (1, 1.0)
        flag: bool = False
        either: bool | int = 0
        anything: Any = None

    assert Config(flag=True, either=True, anything=True).either is True
    for params, where in [
        ({"widths": [4, True]}, "widths: Value error, expected a number at [1]"),
        ({"scale": {"a": 1.0, "b": False}}, "scale: Value error, expected a number at ['b']"),
        ({"pair": (True, 1.0)}, "pair: Value error, expected a number at [0]"),
    ]:
        with pytest.raises(pydantic.ValidationError) as info:
            Config.model_validate(params)
        assert where in str(info.value).replace("\n  ", ": ")


def test_numbers_still_come_as_ints_and_numeric_strings(host: PluginHost) -> None:
    """YAML ``lr: 1`` is a float; ``--set train.lr=1e-3`` reaches pydantic as the string
    '1e-3' (PyYAML reads no exponent without a dot as a float)."""
    cfg = load_config(_base(train={"lr": 1, "grad_clip": 2}), host=host)
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    cfg = load_config(
        _base(encoder={"name": "pca"}),
        ["train.lr=1e-3", "train.epochs=3", "encoder.params.dim=5"],
        host=host,
    )
    assert (cfg.train.lr, cfg.train.epochs, cfg.encoder.params["dim"]) == (0.001, 3, 5)
    with pytest.raises(ConfigError, match=r"train\.epochs: expected a number, got a boolean"):
        load_config(_base(), ["train.epochs=true"], host=host)


# -------------------------------------------------------------- the seed's range (issue 16)
def test_seed_is_bounded_to_numpys_legacy_range() -> None:
    from cdkd_core.config.models import MAX_SEED

    assert MAX_SEED == 2**32 - 1
    assert parse_config(_base(seed=MAX_SEED)).seed == MAX_SEED
    for seed in (MAX_SEED + 1, 2**63 - 1, 2**64):
        assert "seed: Input should be less than or equal to 4294967295" in str(
            _config_error(_base(seed=seed))
        )


def test_the_largest_seed_runs_with_a_target_domain(tmp_path: Path, host: PluginHost) -> None:
    """Every seed derived from it (per domain, per split, the quiz, the student) stays in
    the range of numpy's and torch's seeding."""
    from cdkd_core.config.models import MAX_SEED
    from cdkd_core.run.runner import run_pipeline
    from cdkd_core.testing import tiny_pipeline_config

    data = tiny_pipeline_config()
    data["seed"] = MAX_SEED
    data["train"]["epochs"] = 1
    data["domains"][1].update(role="target", label_fraction=0.5)
    data["feedback"] = {"name": "meta"}  # draws a quiz split (seed * 1000 + i + 17)
    result = run_pipeline(data, output=tmp_path, host=host)
    assert result.summary["seed"] == MAX_SEED


# ------------------------------------------- the machine: CPU threads and device (issue 16)
def test_more_threads_than_cpus_are_refused(host: PluginHost, monkeypatch) -> None:
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    load_config(_base(train={"threads": 4}), host=host)
    msg = _component_error(_base(train={"threads": 100_000}), host)
    assert msg == (
        "train.threads: 100000 but this machine has 4 CPUs (os.cpu_count() = 4); "
        "use at most 4, or null for torch's default"
    )


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_on_a_machine_without_one_is_refused(host: PluginHost, monkeypatch, device) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    msg = _component_error(_base(train={"device": device}), host)
    assert msg.startswith(f"train.device: {device} but ")
    assert msg.endswith("; use auto or cpu")
    assert "no CUDA device" in msg or "without CUDA" in msg


def test_a_cuda_index_beyond_the_devices_is_refused(host: PluginHost, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    load_config(_base(train={"device": "cuda:1"}), host=host)
    msg = _component_error(_base(train={"device": "cuda:2"}), host)
    assert msg == (
        "train.device: cuda:2 but torch sees 2 CUDA devices (cuda:0 to cuda:1); "
        "use one of those, cuda or auto"
    )


def test_a_torchrun_process_without_a_gpu_of_its_own_is_refused(
    host: PluginHost, monkeypatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    env = {
        "RANK": "2",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "2",
        "MASTER_ADDR": "x",
        "MASTER_PORT": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    msg = _component_error(_base(train={"device": "cuda"}), host)
    assert "local process 2 and torch sees 2 CUDA devices" in msg


def test_mps_on_a_machine_without_one_is_refused(host: PluginHost, monkeypatch) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    msg = _component_error(_base(train={"device": "mps"}), host)
    assert msg == "train.device: mps but torch sees no MPS (Apple GPU) device; use auto or cpu"


def test_machine_checks_can_be_left_out_for_a_finished_runs_config(host: PluginHost) -> None:
    data = _base(train={"threads": 100_000, "device": "cuda:7"})
    with pytest.raises(ConfigError, match=r"train\.threads"):
        load_config(data, host=host)
    assert load_config(data, host=host, machine=False).train.threads == 100_000
