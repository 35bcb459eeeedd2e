"""Run by the distributed tests, once alone and once under torchrun on 2 processes:
``python tests/ddp_worker.py collectives|fit OUT_DIR [BATCH_SIZE]`` writes what this
process saw to ``OUT_DIR/rank<R>.pt`` (``single.pt`` when alone)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from cdkd_core.builtins.architectures import MLP
from cdkd_core.builtins.losses import CrossEntropyLoss
from cdkd_core.components.domain import DomainData, Split
from cdkd_core.config.models import DomainEntry
from cdkd_core.data.preparation import PreparedDomain
from cdkd_core.engine.distributed import (
    any_across,
    averaged_gradients,
    broadcast_module,
    broadcast_object,
    current_world,
    gather_rows,
    process_group,
    shard_bounds,
    sum_across,
)
from cdkd_core.engine.fit import fit
from cdkd_core.engine.plans import DomainPlan
from cdkd_core.engine.settings import FitSettings
from cdkd_core.nets.network import MultiDomainNet


def collectives() -> dict:
    """Each collective on a small known input."""
    world = current_world()
    n = 5  # process 0 holds rows 0-1, process 1 rows 2-4: unequal blocks
    lo, hi = shard_bounds(n, world)
    full = torch.arange(n * 3, dtype=torch.float32).reshape(n, 3)
    out = {
        "world": [world.rank, world.size],
        "gathered": gather_rows(full[lo:hi], n),
        "flags": list(any_across(world.rank == 1, False)),
        "sums": sum_across({"b": torch.tensor(world.rank + 1.0), "a": torch.tensor(10.0)}),
        "obj": broadcast_object({"dir": f"from {world.rank}"}),
    }
    # gradients averaged as they are computed: each process gets the mean of both
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    with averaged_gradients(model):
        model(torch.full((1, 2), world.rank + 1.0)).sum().backward()
    out["grad"] = model.weight.grad.clone()
    model.weight.grad = None
    model(torch.ones(1, 2)).sum().backward()  # outside the block: not averaged
    out["local_grad"] = model.weight.grad
    other = nn.Linear(2, 2)  # process 0's parameters win
    with torch.no_grad():
        other.weight.fill_(float(world.rank))
    broadcast_module(other)
    out["weight"] = other.weight.detach()
    return out


def _blobs(n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    return Split.single_view(torch.randn(n, 4, generator=g) + (y[:, None].float() * 3 - 1.5), y)


def train(batch_size: int) -> dict:
    """Three epochs of fit() on two Gaussian blobs (64 training examples)."""
    splits = {"train": _blobs(64, 1), "val": _blobs(40, 2), "test": _blobs(20, 3)}
    data = DomainData("tabular", "toy.task", ["a", "b"], splits)
    d = PreparedDomain(
        DomainEntry(name="toy"),
        data,
        splits["train"],
        splits["val"],
        splits["test"],
        None,
        torch.ones(64).bool(),
        torch.ones(40).bool(),
    )
    torch.manual_seed(0)
    mlp = MLP.from_params({"width": 8, "depth": 1})
    model = MultiDomainNet(
        {d.space: mlp.build_stem((4,), 8)}, mlp.build_trunk(), {d.task: nn.Linear(8, 2)}
    )
    plan = DomainPlan(
        domain=d,
        x=d.train.student_x,
        labels=d.train.y.clone(),
        labelled=d.labelled,
        index=torch.arange(64),
        val_x=d.val.student_x,
    )
    settings = FitSettings(
        epochs=3,
        batch_size=batch_size,
        lr=0.02,
        weight_decay=0.0,
        scheduler="constant",
        patience=None,
        grad_clip=5.0,
        eval_batch_size=64,
        device=torch.device("cpu"),
        seed=0,
    )
    result = fit(model, [plan], [(CrossEntropyLoss(), 1.0)], settings)
    return {
        "state": model.state_dict(),
        "history": [r["loss"]["0:ce"] for r in result.history],
        "val": [r["val_score"] for r in result.history],
    }


def main() -> None:
    torch.set_num_threads(1)
    what, out = sys.argv[1], Path(sys.argv[2])
    with process_group("cpu") as world:
        result = collectives() if what == "collectives" else train(int(sys.argv[3]))
        name = f"rank{world.rank}" if world.distributed else "single"
        torch.save(result, out / f"{name}.pt")


if __name__ == "__main__":
    main()
