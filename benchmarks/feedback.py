"""Feedback: rounds 0-2 of each strategy against no-feedback controls given the same
total training epochs, and the time each round costs."""

from __future__ import annotations

import copy
from typing import Any

from benchmarks.harness import Harness, Run
from benchmarks.settings import feedback_setting
from benchmarks.stats import mean_std, paired_bootstrap
from cdkd_core.experimental import read_metrics

ROUNDS = 3
STRATEGIES = {
    "mutual": {"name": "mutual", "params": {"rounds": ROUNDS}},
    "hard_examples": {"name": "hard_examples", "params": {"rounds": ROUNDS, "epochs": 3}},
}


def _round_times(run: Run) -> list[float]:
    """Seconds from the start of the run to each round's evaluation."""
    return [
        r["t"]
        for r in read_metrics(run.run_dir / "metrics.jsonl")
        if r.get("stage") == "evaluation"
    ]


def run(h: Harness, seeds: list[int], quick: bool, replicates: int, only=None) -> dict[str, Any]:
    """Each strategy for ``ROUNDS`` rounds, and controls: no feedback, the student trained
    ``r + 1`` times its epochs and the teacher ``3 r`` epochs longer (the compute that
    ``r`` rounds of ``hard_examples`` add), for r = 0, 1, 2."""
    config = feedback_setting(quick)
    epochs = config["train"]["epochs"]
    print("feedback", flush=True)
    strategy_runs: dict[str, list[Run]] = {s: [] for s in STRATEGIES}
    controls: dict[int, list[Run]] = {r: [] for r in range(ROUNDS)}
    for seed in seeds:
        for s, ref in STRATEGIES.items():
            strategy_runs[s].append(h.run(config, s, seed=seed, feedback=ref))
        for r in range(ROUNDS):
            train = copy.deepcopy(config["train"])
            train.update({"epochs": epochs * (r + 1), "teacher_epochs": epochs + 3 * r})
            controls[r].append(h.run(config, f"control{r}", seed=seed, train=train))
    target = next(n for n, d in config_domains(strategy_runs) if d["role"] != "source")
    out: dict[str, Any] = {"domain_scores": {}, "config": config, "rounds": ROUNDS}
    names = list(strategy_runs["mutual"][0].summary["domains"])
    for s, runs in strategy_runs.items():
        rows = []
        for r in range(ROUNDS):
            rows.append(
                {
                    "round": r,
                    "student": {
                        n: mean_std(
                            [x.summary["round_results"][r]["domains"][n]["student"] for x in runs]
                        )
                        for n in names
                    },
                    "teacher": {
                        n: mean_std(
                            [x.summary["round_results"][r]["domains"][n]["teacher"] for x in runs]
                        )
                        for n in names
                    },
                    "seconds_to_round": mean_std([_round_times(x)[r] for x in runs])["mean"],
                }
            )
        out["domain_scores"][s] = rows
    out["controls"] = [
        {
            "round": r,
            "student": {
                n: mean_std([x.summary["domains"][n]["student"] for x in controls[r]])
                for n in names
            },
            "teacher": {
                n: mean_std([x.summary["domains"][n]["teacher"] for x in controls[r]])
                for n in names
            },
            "wall_s": mean_std([x.summary["wall_s"] for x in controls[r]])["mean"],
        }
        for r in range(ROUNDS)
    ]
    out["baseline"] = {
        n: mean_std([x.summary["domains"][n]["baseline"] for x in controls[0]]) for n in names
    }
    out["target"] = target
    # the last round of each strategy against the control of the same total epochs, on the
    # target (feedback's student predictions are those of the last round)
    metric = controls[0][0].summary["domains"][target]["metric"]
    out["last_round_minus_control"] = {
        s: paired_bootstrap(
            metric,
            [x.labels[target] for x in runs],
            [x.probs[target]["student"] for x in runs],
            [c.probs[target]["student"] for c in controls[ROUNDS - 1]],
            replicates=replicates,
        )
        for s, runs in strategy_runs.items()
    }
    return out


def config_domains(strategy_runs: dict[str, list[Run]]):
    """(name, summary entry) of the domains of the first strategy run."""
    first = next(iter(strategy_runs.values()))[0]
    return first.summary["domains"].items()
