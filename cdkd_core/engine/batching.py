"""An epoch's batches: drawn from the plans, cut into each process's share under torchrun,
and gathered onto the device."""

from __future__ import annotations

import math

import torch

from cdkd_core.engine.distributed import World
from cdkd_core.engine.plans import DomainPlan, LiveTeacher

#: a batch of an epoch: the plan's position in the list and the rows of its examples
Batch = tuple[int, torch.Tensor]


def draw_batches(
    plans: list[DomainPlan], batch_size: int, generator: torch.Generator
) -> tuple[list[Batch], list[int]]:
    """One epoch's single-domain batches and the shuffled order to visit them in: each
    plan's examples permuted and cut into ``batch_size`` rows, then the batches of all
    plans shuffled together (all draws from ``generator``, in that order)."""
    batches: list[Batch] = []
    for p_idx, plan in enumerate(plans):
        order = plan.index[torch.randperm(len(plan.index), generator=generator)]
        batches += [(p_idx, order[i : i + batch_size]) for i in range(0, len(order), batch_size)]
    return batches, torch.randperm(len(batches), generator=generator).tolist()


def process_share(idx: torch.Tensor, world: World) -> tuple[torch.Tensor, float] | None:
    """This process's rows of a batch under torchrun, ``idx[rank::size]``, and its share of
    the batch; the whole batch (share 1) in a single process; None when the batch has
    fewer rows than there are processes (it is skipped)."""
    if not world.distributed:
        return idx, 1.0
    if len(idx) < world.size:
        return None
    share = math.ceil((len(idx) - world.rank) / world.size) / len(idx)
    return idx[world.rank :: world.size], share


class BatchSource:
    """Cuts a step's batch out of a plan's tensors and puts it on the device.

    On a GPU, the plans' tensors (inputs, labels, cached teacher outputs) are moved there
    once when they take under a quarter of its free memory, so a step indexes GPU memory
    instead of copying from the host; otherwise each batch is gathered on the host and
    copied.
    """

    def __init__(self, plans: list[DomainPlan], device: torch.device) -> None:
        self.plans, self.device = plans, device
        self.tensors = [self._tensors(plan) for plan in plans]
        if device.type == "cuda":
            size = sum(t.nbytes for ts in self.tensors for t in ts.values() if t is not None)
            free, _ = torch.cuda.mem_get_info(device)
            if size < free // 4:
                self.tensors = [
                    {k: None if t is None else t.to(device) for k, t in ts.items()}
                    for ts in self.tensors
                ]

    @staticmethod
    def _tensors(plan: DomainPlan) -> dict[str, torch.Tensor | None]:
        t = plan.teacher
        return {
            "x": plan.x,
            "labels": plan.labels,
            "labelled": plan.labelled,
            "teacher_logits": t.logits if t is not None else None,
            "teacher_features": t.features if t is not None else None,
            "knowledge": t.knowledge if t is not None else None,
            "example_weights": plan.example_weights,
        }

    def batch(
        self, p_idx: int, idx: torch.Tensor, live: LiveTeacher | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
        """The inputs and the rest of the batch context of ``idx`` in plan ``p_idx``."""
        device = self.device
        tensors = self.tensors[p_idx]
        rows = {
            k: None if t is None else t[idx.to(t.device)].to(device) for k, t in tensors.items()
        }
        if live is not None:
            fresh = live.logits(self.plans[p_idx], idx)
            if fresh is not None:
                rows["teacher_logits"] = fresh.to(device)
        return rows.pop("x"), rows
