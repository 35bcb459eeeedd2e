"""Component contracts checked right after the call that can break them, blamed on the
plugin and stage; plugin exceptions reported as one line through the CLI; the same checks
offered to plugin authors in ``cdkd_core.testing``."""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cdkd_core import load_config, run_pipeline
from cdkd_core.components.contracts import (
    ContractError,
    check_encoder_output,
    check_encoder_state,
    check_loss_value,
    looks_like_pickle,
)
from cdkd_core.errors import DataError, PluginError
from tests.conftest import TINY
from tests.faulty_plugin import make_host

torch.set_num_threads(1)


def _run(config: dict, tmp_path, host=None):
    host = host or make_host()
    return run_pipeline(load_config(config, host=host), output=tmp_path, host=host)


def _with(**changes) -> dict:
    config = copy.deepcopy(TINY)
    config["train"]["epochs"] = 1
    config.update(changes)
    return config


# --------------------------------------------------------------------------- in the pipeline


def test_an_encoder_wider_than_its_dim_is_refused_after_transform(tmp_path):
    with pytest.raises(ContractError) as info:
        _run(_with(encoder={"name": "testing.wide", "params": {"dim": 4}}), tmp_path)
    message = str(info.value)
    assert message.startswith(
        "plugin 'faulty' 1.2.3, encoder 'testing.wide', broke its contract during "
        "knowledge extraction (round 0): transform(features ["
    )
    assert "returned shape [" in message and ", 5]; expected a floating tensor of shape" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("encoder", "fragment"),
    [
        ("testing.numpy_state", "state() tensors['mean'] is a numpy.ndarray; expected a torch"),
        ("testing.pickled_state", "state() tensors['blob'] holds a pickle stream as uint8"),
        ("testing.set_meta", "state() metadata.classes.a is a set; expected JSON-serialisable"),
    ],
)
def test_an_encoder_state_that_is_not_tensors_and_json_is_refused_after_fit(
    tmp_path, encoder, fragment
):
    with pytest.raises(ContractError) as info:
        _run(_with(encoder={"name": encoder, "params": {"dim": 4}}), tmp_path)
    message = str(info.value)
    assert message.startswith(
        f"plugin 'faulty' 1.2.3, encoder '{encoder}', broke its contract during knowledge "
        "extraction (round 0): "
    )
    assert fragment in message
    (run_dir,) = tmp_path.iterdir()
    assert not (run_dir / "encoder.json").exists()  # refused before the save, not at it


def test_a_loss_that_is_not_a_scalar_is_refused_naming_it(tmp_path):
    losses = [{"name": "ce"}, {"name": "testing.per_example"}]
    with pytest.raises(ContractError) as info:
        _run(_with(losses=losses), tmp_path)
    assert str(info.value).startswith(
        "plugin 'faulty' 1.2.3, loss 'testing.per_example', broke its contract during "
        "distillation (round 0): returned shape [64]; expected a floating scalar tensor"
    )


def test_a_stem_of_the_wrong_width_is_refused_before_training(tmp_path):
    student = {
        "trunk": {"name": "mlp", "params": {"width": 8, "depth": 1}},
        "stems": {"tabular": {"name": "testing.narrow_stem"}},
    }
    with pytest.raises(ContractError) as info:
        _run(_with(student=student), tmp_path)
    assert str(info.value).startswith(
        "plugin 'faulty' 1.2.3, architecture 'testing.narrow_stem', broke its contract during "
        "building networks: its stem returned shape [2, 7]; expected a floating tensor of "
        "shape [2, 8] ([N, trunk.in_features])"
    )
    assert list(tmp_path.iterdir()) == []  # nothing trained: nothing left


def test_a_broken_builtin_contract_names_the_builtin_plugin(tmp_path, monkeypatch):
    from cdkd_core import __version__
    from cdkd_core.builtins.encoders import PCAEncoder

    real = PCAEncoder.transform
    monkeypatch.setattr(PCAEncoder, "transform", lambda self, f, d: real(self, f, d).long())
    with pytest.raises(ContractError) as info:
        _run(_with(), tmp_path)
    assert str(info.value).startswith(
        f"plugin 'cdkd.encoders' {__version__}, encoder 'pca', broke its contract during"
    )
    assert "returned dtype torch.int64" in str(info.value)


def test_a_domain_that_cannot_read_its_data_names_the_plugin(tmp_path):
    domains = [{"name": "testing.unreadable_wine", "role": "source"}]
    with pytest.raises(DataError) as info:
        _run(_with(domains=domains), tmp_path)
    assert str(info.value) == (
        "domain 'testing.unreadable_wine' (testing.unreadable_wine from plugin 'faulty' "
        "1.2.3): wine.csv: no such file"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_component_failing_as_it_is_built_is_blamed_on_its_plugin(tmp_path):
    with pytest.raises(PluginError) as info:
        _run(_with(feedback={"name": "testing.broken_feedback"}), tmp_path)
    assert str(info.value) == (
        "plugin 'faulty' 1.2.3, feedback strategy 'testing.broken_feedback', failed during "
        "setup: ValueError: no rounds today (run with --debug for the traceback)"
    )
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- through the CLI


def _cli(monkeypatch, tmp_path, config: dict, *args: str):
    import importlib

    from cdkd_core.testing import invoke_cli

    app_module = importlib.import_module("cdkd_core.cli.app")
    monkeypatch.setattr(app_module, "make_host", make_host)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return invoke_cli(*args, "run", str(path), "--output", str(tmp_path / "runs"), "--quiet")


def test_a_plugin_exception_is_one_error_line_through_the_cli(monkeypatch, tmp_path):
    config = _with(losses=[{"name": "ce"}, {"name": "testing.exploding"}])
    result = _cli(monkeypatch, tmp_path, config)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "error: plugin 'faulty' 1.2.3, loss 'testing.exploding', failed during distillation "
        "(round 0): RuntimeError: bad batch of"
    )
    assert lines[0].endswith("(run with --debug for the traceback)")
    assert "Traceback" not in result.output


def test_with_debug_the_traceback_is_shown(monkeypatch, tmp_path):
    config = _with(losses=[{"name": "ce"}, {"name": "testing.exploding"}])
    result = _cli(monkeypatch, tmp_path, config, "--debug")
    assert result.exit_code != 0
    assert isinstance(result.exception, PluginError)
    cause = result.exception.__cause__
    assert isinstance(cause, RuntimeError) and cause.__traceback__ is not None


def test_a_broken_contract_is_one_error_line_through_the_cli(monkeypatch, tmp_path):
    config = _with(encoder={"name": "testing.numpy_state", "params": {"dim": 4}})
    result = _cli(monkeypatch, tmp_path, config)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: plugin 'faulty' 1.2.3, encoder 'testing.numpy_state', broke its contract"
    )


# --------------------------------------------------------------------------- the checks


def test_pickle_streams_of_every_protocol_are_recognised():
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        assert looks_like_pickle(pickle.dumps({"a": [1, 2.5, "x"]}, protocol=protocol))
    assert not looks_like_pickle(b"")
    assert not looks_like_pickle(bytes(range(256)))


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=512))
def test_quantised_weights_are_not_taken_for_a_pickle(data):
    """Arbitrary bytes (what a uint8 quantised state holds) are refused only when they are a
    pickle stream: a protocol 2-5 header, or a whole stream ending in STOP."""
    looks = looks_like_pickle(data)
    header = data[0] == 0x80 and len(data) > 1 and 2 <= data[1] <= 5
    if looks and not header:
        assert data[-1:] == b"."  # pickle's STOP opcode ends a whole stream


def test_state_checks_accept_a_good_state_and_name_the_problem_otherwise():
    from cdkd_core.builtins.encoders import PCAEncoder

    encoder = PCAEncoder.from_params({"dim": 2})
    encoder.fit({"a": torch.randn(20, 5)}, {"a": torch.arange(20) % 2})
    tensors, meta = encoder.state()
    check_encoder_state(encoder, (tensors, meta))
    quantised = {**tensors, "q": torch.arange(0, 250, dtype=torch.uint8)}
    check_encoder_state(encoder, (quantised, meta))  # plain uint8 data are fine
    with pytest.raises(ContractError, match=r"metadata.r\[0\] is nan"):
        check_encoder_state(encoder, (tensors, {"r": [float("nan")]}))
    with pytest.raises(ContractError, match=r"metadata.x is a numpy.ndarray"):
        check_encoder_state(encoder, (tensors, {"x": np.zeros(2)}))
    with pytest.raises(ContractError, match=r"returned list; expected \(tensors"):
        check_encoder_state(encoder, [tensors, meta])
    x = torch.randn(3, 5)
    with pytest.raises(ContractError, match=r"NaN or infinite"):
        check_encoder_output(encoder, x, torch.full((3, 2), float("nan")), "a")
    with pytest.raises(ContractError, match=r"returned a ndarray|returned a numpy.ndarray"):
        check_encoder_output(encoder, x, np.zeros((3, 2)), "a")


def test_loss_value_check():
    from cdkd_core.builtins.losses import CrossEntropyLoss

    loss = CrossEntropyLoss()
    check_loss_value(loss, None)
    check_loss_value(loss, torch.tensor(1.0))
    check_loss_value(loss, torch.tensor([1.0]))
    with pytest.raises(ContractError, match=r"returned a float; expected a floating scalar"):
        check_loss_value(loss, 1.0)
    with pytest.raises(ContractError, match=r"returned dtype torch.int64"):
        check_loss_value(loss, torch.tensor(1))


def test_the_error_names_whatever_is_known():
    error = ContractError("encoders", object, "it is wrong")
    assert str(error) == "encoder 'object' broke its contract: it is wrong"
    error.attribute("p", None, "saving")
    assert (
        str(error) == "plugin 'p', encoder 'object', broke its contract during saving: it is wrong"
    )
    assert json.loads(json.dumps(str(error)))  # one plain line


# --------------------------------------------------------------------------- for plugin authors


def _features():
    gen = torch.Generator().manual_seed(0)
    features = {"a": torch.randn(40, 6, generator=gen), "b": torch.randn(30, 6, generator=gen)}
    return features, {"a": torch.arange(40) % 3, "b": torch.arange(30) % 2}


def test_check_encoder_passes_a_good_encoder_and_fails_a_broken_one_with_the_run_text():
    from cdkd_core.builtins.encoders import PCAEncoder
    from cdkd_core.testing import check_encoder
    from tests.faulty_plugin import NumpyStateEncoder, PickledStateEncoder, WideEncoder

    vectors = check_encoder(PCAEncoder.from_params({"dim": 3}), *_features())
    assert vectors["a"].shape == (40, 3)
    with pytest.raises(AssertionError) as info:
        check_encoder(WideEncoder.from_params({"dim": 3}), *_features())
    assert str(info.value).startswith("encoder 'testing.wide' broke its contract: transform(")
    with pytest.raises(AssertionError, match=r"tensors\['mean'\] is a numpy.ndarray"):
        check_encoder(NumpyStateEncoder.from_params({"dim": 3}), *_features())
    with pytest.raises(AssertionError, match="pickle stream"):
        check_encoder(PickledStateEncoder.from_params({"dim": 3}), *_features())


def test_check_encoder_finds_a_state_that_does_not_restore_it():
    from cdkd_core.builtins.encoders import PCAEncoder
    from cdkd_core.testing import check_encoder

    class Forgetful(PCAEncoder):
        """Loses its mean on load."""

        name = "forgetful"

        def load_state(self, tensors, meta):
            super().load_state(tensors, meta)
            self._mean = self._mean + 1.0

    with pytest.raises(AssertionError, match=r"differs after save\(\) and load\(\)"):
        check_encoder(Forgetful.from_params({"dim": 3}), *_features())


def test_check_loss():
    from cdkd_core.builtins.losses import CrossEntropyLoss
    from cdkd_core.testing import check_loss
    from tests.faulty_plugin import PerExampleLoss

    assert check_loss(CrossEntropyLoss()).dim() == 0
    with pytest.raises(AssertionError) as info:
        check_loss(PerExampleLoss())
    assert str(info.value) == (
        "loss 'testing.per_example' broke its contract: returned shape [16]; expected a "
        "floating scalar tensor (or None to skip the batch)"
    )


def test_check_architecture():
    from cdkd_core.builtins.architectures import MLP
    from cdkd_core.testing import check_architecture
    from tests.faulty_plugin import NarrowStem

    check_architecture(MLP.from_params({"width": 8, "depth": 1}))
    with pytest.raises(AssertionError, match=r"its stem returned shape \[4, 7\]"):
        check_architecture(NarrowStem.from_params({"width": 8, "depth": 1}))
