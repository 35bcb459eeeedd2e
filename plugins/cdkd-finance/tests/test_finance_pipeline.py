"""One short end-to-end run: two credit schemas teach a student on a third through the
common space, and the S&P 500 series trains a GRU teacher stem beside them."""

from __future__ import annotations

import math

from safetensors.torch import load_file

from cdkd_core import run_pipeline
from cdkd_core.testing import tiny_pipeline_config

#: the tiny pipeline (mlp teacher 32 and student 8, pca 4, ce + kd + hint, 2 epochs) over
#: the finance domains
CONFIG = tiny_pipeline_config() | {
    "name": "finance-e2e",
    "domains": [
        {
            "name": "finance.credit_data",
            "role": "source",
            "params": {"schema": "common", "max_examples": 400},
        },
        {
            "name": "finance.german_credit",
            "role": "source",
            "params": {"schema": "common", "max_examples": 300},
        },
        {
            "name": "finance.default",
            "role": "target",
            "label_fraction": 0.05,
            "params": {"schema": "common", "max_examples": 1000},
        },
        {
            "name": "finance.sp500",
            "role": "source",
            "params": {"max_examples": 300, "window": 10, "vol_window": 5},
        },
    ],
}


def test_credit_transfer_through_the_common_space(finance_host, tmp_path):
    result = run_pipeline(CONFIG, host=finance_host, output=tmp_path)
    domains = result.summary["domains"]
    assert set(domains) == {
        "finance.credit_data",
        "finance.german_credit",
        "finance.default",
        "finance.sp500",
    }
    for name, entry in domains.items():
        for model in ("teacher", "student", "baseline"):
            value = entry[model]
            assert isinstance(value, float) and math.isfinite(value), (name, model)
            assert 0.0 <= value <= 1.0
    # the target shares the common stem and the credit_risk head: the teacher scores it
    assert domains["finance.default"]["metric"] == "roc_auc"
    assert domains["finance.default"]["sizes"]["labelled"] == 30  # 5% of 600 train rows
    assert set(domains["finance.default"]["metrics"]["student"]) == {"roc_auc", "accuracy", "ks"}
    assert domains["finance.sp500"]["metric"] == "accuracy"
    assert 0.5 <= domains["finance.sp500"]["reference"]["majority_rate"] <= 1
    # one common stem and one credit head; the teacher's series stem is the default gru,
    # the student's the core's mlp
    teacher = load_file(result.run_dir / "teacher.safetensors")
    student = load_file(result.run_dir / "student.safetensors")
    stems = {k.split(".")[1] for k in teacher if k.startswith("stems.")}
    heads = {k.split(".")[1] for k in teacher if k.startswith("heads.")}
    assert stems == {
        "finance~credit_common",
        "finance~price_window~return-range-volume_change-volatility~w10~v5",
    }
    assert heads == {"credit_risk", "market_direction"}
    assert any(".gru." in k for k in teacher)
    assert not any(".gru." in k for k in student)


def test_example_configs_validate(finance_host):
    from pathlib import Path

    from cdkd_core import load_config

    examples = Path(__file__).parents[1] / "examples"
    names = sorted(p.name for p in examples.glob("*.yaml"))
    assert names == ["credit_transfer.yaml", "my_data.yaml"]
    for path in examples.glob("*.yaml"):
        config = load_config(path, host=finance_host)
        assert any(d.name.startswith("finance.") for d in config.domains)
