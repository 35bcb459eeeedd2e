"""``cdkd_core.testing``'s named checks: each kind's ``check_*`` call split into named
checks (``component_checks``) and one pytest test per component and check
(``parametrize_with_checks``), with expected failures marked ``xfail(strict=True)``."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from cdkd_core import hookimpl
from cdkd_core.builtins.domains import Wine
from cdkd_core.builtins.feedback import MutualLearning, NoFeedback
from cdkd_core.testing import check_domain, component_checks, make_host, parametrize_with_checks
from tests.rogue_plugin import LeakyWine

torch.set_num_threads(1)


class _Plugin:
    @hookimpl
    def register_domains(self, register):
        register(LeakyWine)


def _names(component, options=None):
    return [check.__name__ for _, check in component_checks(component, options)]


def test_each_kind_has_its_named_checks_and_skips_parts_a_component_lacks():
    host = make_host()
    assert _names(host.get("domains", "sklearn.iris")()) == [
        "check_load_returns_domain_data",
        "check_splits_are_well_formed",
        "check_modality_and_task_are_named",
        "check_metrics_are_known",
        "check_load_is_reproducible",
        "check_splits_are_disjoint",
    ]
    assert _names(host.get("architectures", "mlp")()) == [
        "check_trunk",
        "check_stem_output",
        "check_head_output",
    ]
    assert _names(host.get("architectures", "cnn")()) == ["check_stem_output", "check_head_output"]
    assert _names(host.get("encoders", "pca").from_params({"dim": 4})) == [
        "check_encoder_dim",
        "check_encoder_state",
        "check_transform_output",
        "check_state_restores_transform",
    ]
    assert "check_live_round" in _names(MutualLearning())
    assert "check_live_round" not in _names(NoFeedback())


def test_every_named_check_passes_the_built_ins():
    host = make_host()
    components = [
        host.get("domains", "sklearn.wine")(),
        host.get("architectures", "mlp").from_params({"width": 8}),
        host.get("architectures", "cnn")(),
        host.get("encoders", "pca").from_params({"dim": 4}),
        host.get("losses", "kd")(),
        host.get("feedback", "hard_examples").from_params({"epochs": 1}),
        MutualLearning(),
    ]
    for component in components:
        for same, check in component_checks(component):
            assert same is component
            check(component)


def test_a_named_check_fails_alone_with_the_text_of_the_whole_check():
    leaky = LeakyWine()
    with pytest.raises(AssertionError) as whole:
        check_domain(leaky)
    failed = {}
    for component, check in component_checks(leaky):
        try:
            check(component)
        except AssertionError as exc:
            failed[check.__name__] = str(exc)
    assert failed == {"check_splits_are_disjoint": str(whole.value)}
    for component, check in component_checks(leaky, {"max_shared": 0.1}):
        check(component)


def test_unknown_options_are_refused():
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['inptus'\]"):
        list(component_checks(make_host().get("architectures", "mlp")(), {"inptus": None}))
    with pytest.raises(TypeError, match=r"\['params'\]"):
        list(component_checks(Wine(), {"params": {}}))
    with pytest.raises(TypeError, match="is not a component"):
        list(component_checks(object()))


def test_parametrize_names_each_test_after_component_and_check():
    mark = parametrize_with_checks(
        ["sklearn.iris", ("mlp", {"width": 8}), ("sklearn.wine", {}, {"seed": 3})]
    )
    assert mark.args[0] == ("component", "check")
    ids = [param.id for param in mark.args[1]]
    assert ids[0] == "sklearn.iris-check_load_returns_domain_data"
    assert "mlp(width=8)-check_trunk" in ids
    assert "sklearn.wine-check_splits_are_disjoint" in ids
    assert len(ids) == 6 + 3 + 6
    assert not any(param.marks for param in mark.args[1])


def test_expected_failures_are_strict_xfails_by_name_or_function():
    reason = "three test rows copied into train"
    by_name = parametrize_with_checks(
        ["test.leaky"],
        plugins=[("leak", _Plugin())],
        expected_failed_checks={"test.leaky": {"check_splits_are_disjoint": reason}},
    )
    by_function = parametrize_with_checks(
        [LeakyWine()],
        expected_failed_checks=lambda c: {"check_splits_are_disjoint": reason},
    )
    for mark in (by_name, by_function):
        marked = {p.id: p.marks for p in mark.args[1] if p.marks}
        assert list(marked) == ["test.leaky-check_splits_are_disjoint"]
        (xfail,) = marked["test.leaky-check_splits_are_disjoint"]
        assert xfail.name == "xfail" and xfail.kwargs == {"strict": True, "reason": reason}


def test_unknown_names_and_checks_are_refused_at_collection():
    with pytest.raises(ValueError, match="'nope' names no component in the plugin host"):
        parametrize_with_checks(["nope"])
    with pytest.raises(ValueError, match=r"names \['check_typo'\] for 'sklearn.iris'"):
        parametrize_with_checks(
            ["sklearn.iris"], expected_failed_checks={"sklearn.iris": {"check_typo": "x"}}
        )


def test_in_pytest_an_expected_failure_passes_and_a_fixed_one_fails(tmp_path):
    """Strict: the marked check fails as expected (xfailed); marking a check that passes
    fails the test (XPASS(strict))."""
    module = tmp_path / "test_contracts.py"
    module.write_text(
        textwrap.dedent(
            """
            import dataclasses

            import torch

            from cdkd_core.builtins.domains import Wine
            from cdkd_core.components.domain import Split
            from cdkd_core.testing import parametrize_with_checks


            class Leaky(Wine):
                name = "test.leaky"

                def load(self, seed):
                    data = super().load(seed)
                    train, test = data.splits["train"], data.splits["test"]
                    joined = Split.single_view(
                        torch.cat([train.student_x, test.student_x[:3]]),
                        torch.cat([train.y, test.y[:3]]),
                    )
                    return dataclasses.replace(data, splits={**data.splits, "train": joined})


            @parametrize_with_checks(
                [Leaky(), Wine()],
                expected_failed_checks={
                    "test.leaky": {"check_splits_are_disjoint": "rows copied"},
                    "sklearn.wine": {"check_metrics_are_known": "not broken at all"},
                },
            )
            def test_contracts(component, check):
                check(component)
            """
        )
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfx"]
    command += ["--rootdir", str(tmp_path), str(module)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "1 failed, 10 passed, 1 xfailed" in done.stdout, done.stdout[-3000:]
    assert "[sklearn.wine-check_metrics_are_known]" in done.stdout
    assert "XPASS(strict)" in done.stdout and "not broken at all" in done.stdout
