"""Against the peer: the same teacher, student, data and epochs distilled with
torchdistill's ``KDLoss`` (through its ``ForwardHookManager``) and with cdkd's ``ce`` +
``kd``; test metric and student-training wall time side by side, over seeds."""

from __future__ import annotations

from typing import Any

import torch

from benchmarks.harness import Harness, fit_settings, load_networks, plain_loop
from benchmarks.settings import peer_setting
from benchmarks.stats import mean_std, paired_bootstrap, paired_t, probabilities
from cdkd_core import load_config
from cdkd_core.experimental import (
    build_network,
    compute,
    predict,
    seed_everything,
    student_seed,
)


def torchdistill_student(run, host, *, alpha: float, temperature: float) -> dict[str, Any]:
    """Train the run's student architecture from the run's initialisation with the run's
    optimiser settings, on the run's domain and teacher, using torchdistill's ``KDLoss``;
    select the epoch on val as cdkd does; return test probabilities and the seconds spent."""
    from torchdistill.core.forward_hook import ForwardHookManager
    from torchdistill.losses.mid_level import KDLoss

    config = load_config(run.run_dir / "config.yaml", host=host)
    teacher, _, domains = load_networks(run, host)
    (d,) = domains
    t = config.train
    # the pipeline builds the student (and seeds its stage) with the student's seed
    student = build_network(config.student, domains, host, "student", student_seed(config.seed))
    seed_everything(student_seed(config.seed))
    head = f"heads.{d.task.replace('.', '~')}"
    s_hooks, t_hooks = ForwardHookManager("cpu"), ForwardHookManager("cpu")
    s_hooks.add_hook(student, head, requires_input=False, requires_output=True)
    t_hooks.add_hook(teacher, head, requires_input=False, requires_output=True)
    criterion = KDLoss(head, "output", head, "output", temperature=temperature, alpha=alpha)
    teacher.eval()

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher(d.train.teacher_x[idx], d.space, d.task)
        student(d.train.student_x[idx], d.space, d.task)
        return criterion(s_hooks.pop_io_dict(), t_hooks.pop_io_dict(), d.train.y[idx])

    seconds = plain_loop(student, d, batch_loss, fit_settings(config, t.epochs))
    logits = predict(student, d.test.student_x, d.space, d.task, t.eval_batch_size, "cpu")
    s_hooks.clear()
    t_hooks.clear()
    return {
        "probs": probabilities(logits),
        "score": compute(d.headline, logits, d.test.y),
        "seconds": seconds,
        "domain": d.name,
        "metric": d.headline,
    }


def run(h: Harness, seeds: list[int], quick: bool, replicates: int, only=None) -> dict[str, Any]:
    """cdkd and torchdistill over ``seeds`` on the peer setting."""
    import torchdistill

    config = peer_setting(quick)
    print("peer: torchdistill", flush=True)
    rows = []
    for seed in seeds:
        cdkd_run = h.run(config, "cdkd", seed=seed)
        td = torchdistill_student(cdkd_run, h.host, alpha=0.5, temperature=4.0)
        name = td["domain"]
        rows.append(
            {
                "seed": seed,
                "cdkd": cdkd_run.summary["domains"][name]["student"],
                "torchdistill": td["score"],
                "teacher": cdkd_run.summary["domains"][name]["teacher"],
                "cdkd_seconds": cdkd_run.stage_seconds("student", 0),
                "torchdistill_seconds": td["seconds"],
                "labels": cdkd_run.labels[name],
                "cdkd_probs": cdkd_run.probs[name]["student"],
                "td_probs": td["probs"],
                "metric": td["metric"],
                "domain": name,
            }
        )
        print(
            f"    seed {seed}: cdkd {rows[-1]['cdkd']:.4f} in {rows[-1]['cdkd_seconds']:.1f} s, "
            f"torchdistill {td['score']:.4f} in {td['seconds']:.1f} s",
            flush=True,
        )
    return {
        "domain": rows[0]["domain"],
        "metric": rows[0]["metric"],
        "torchdistill_version": torchdistill.__version__,
        "teacher": mean_std([r["teacher"] for r in rows]),
        "cdkd": mean_std([r["cdkd"] for r in rows]),
        "torchdistill": mean_std([r["torchdistill"] for r in rows]),
        "cdkd_seconds": mean_std([r["cdkd_seconds"] for r in rows]),
        "torchdistill_seconds": mean_std([r["torchdistill_seconds"] for r in rows]),
        "per_seed": [
            {
                k: r[k]
                for k in ("seed", "cdkd", "torchdistill", "cdkd_seconds", "torchdistill_seconds")
            }
            for r in rows
        ],
        "paired_t_cdkd_minus_torchdistill": paired_t(
            [r["cdkd"] for r in rows], [r["torchdistill"] for r in rows]
        ),
        "bootstrap_cdkd_minus_torchdistill": paired_bootstrap(
            rows[0]["metric"],
            [r["labels"] for r in rows],
            [r["cdkd_probs"] for r in rows],
            [r["td_probs"] for r in rows],
            replicates=replicates,
        ),
        "config": config,
    }
