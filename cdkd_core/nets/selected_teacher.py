"""The teacher ``teacher: auto`` keeps: per task, the candidate with the best val headline
(:mod:`cdkd_core.stages.teacher_selection` fits and chooses them), seen as one teacher.

Candidates, cheapest first: ``linear`` (:class:`~cdkd_core.nets.linear_teacher.
LinearTeacher`), ``network`` (member 0 of the ensemble, built from the run's seed exactly
as a single network teacher), ``ensemble`` (all members, their averaged class
probabilities), ``hist_gbm`` (:class:`~cdkd_core.nets.estimator_teacher.EstimatorTeacher`).
``forward(x, space, task)`` answers with the task's chosen candidate. The feature layer
(``trunk``) gives each chosen candidate a block of columns of its own, filled for the
domains whose task chose it (zeros elsewhere), so the encoders never mix coordinates of
different models.

Once chosen, the candidates no task kept are dropped; the choice (and every candidate's
val score) is part of the state, a byte buffer ``selection`` holding JSON, so a
checkpoint, ``teacher.safetensors``, resume and ``teacher.checkpoint`` rebuild the same
teacher: loading a state applies its choice first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from cdkd_core.nets.ensemble import TeacherEnsemble, mean_probability_logits
from cdkd_core.nets.estimator_teacher import EstimatorTeacher, Representation
from cdkd_core.nets.linear_teacher import LinearTeacher
from cdkd_core.nets.network import MultiDomainNet, count_parameters

#: the candidates in cost order (ties go to the earlier); blocks of the feature layer follow it
CANDIDATE_ORDER = ("linear", "network", "ensemble", "hist_gbm")


class SelectedTeacher(nn.Module):
    """Candidate teachers over the same source tasks, one chosen per task.

    Args:
        members: The network members (member 0 is the ``network`` candidate, all of them
            the ``ensemble``); empty when neither is a candidate.
        linear: The ``linear`` candidate, or None.
        trees: The ``hist_gbm`` candidate, or None.
        candidates: Per task, the candidates it may choose among.
    """

    def __init__(
        self,
        members: list[MultiDomainNet],
        linear: LinearTeacher | None,
        trees: EstimatorTeacher | None,
        candidates: Mapping[str, list[str]],
    ) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.linear = linear
        self.trees = trees
        self.candidates = {task: list(c) for task, c in candidates.items()}
        self.trunk = Representation()
        self.selection: dict[str, Any] = {}
        self.register_buffer("selection_json", torch.zeros(0, dtype=torch.uint8))

    # -- the candidates --------------------------------------------------------------------------
    def candidate(self, name: str) -> nn.Module:
        """The candidate ``name`` as a teacher module."""
        if name == "network":
            return self.members[0]
        if name == "ensemble":
            return TeacherEnsemble(list(self.members))  # type: ignore[arg-type]
        module = self.linear if name == "linear" else self.trees
        if module is None:
            raise KeyError(f"no {name} candidate")
        return module

    @property
    def choice(self) -> dict[str, str]:
        """The chosen candidate per task (empty before the choice)."""
        return dict(self.selection.get("choice", {}))

    @property
    def chosen(self) -> list[str]:
        """The candidates some task chose, in cost order."""
        kept = set(self.choice.values())
        return [c for c in CANDIDATE_ORDER if c in kept]

    def choose(self, selection: dict[str, Any]) -> None:
        """Keep ``selection`` (``choice``: task -> candidate, and what it was chosen on),
        drop the candidates no task chose and size the feature layer."""
        self.selection = json.loads(json.dumps(selection))
        data = json.dumps(self.selection, sort_keys=True).encode()
        self.selection_json = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        kept = set(self.choice.values())
        if "ensemble" not in kept:
            self.members = nn.ModuleList(list(self.members)[:1] if "network" in kept else [])
        if "linear" not in kept:
            self.linear = None
        if "hist_gbm" not in kept:
            self.trees = None
        self._size_trunk()

    def _size_trunk(self) -> None:
        """The feature layer's width: the chosen candidates' blocks (a fitted ``hist_gbm``'s
        width is known once its trees are loaded)."""
        self.trunk.out_features = sum(self._block_width(c) for c in self.chosen)

    def apply_saved_choice(self, state: Mapping[str, torch.Tensor], prefix: str = "") -> None:
        """Choose as the saved ``state`` did (nothing when it was saved before the choice)."""
        data = state.get(prefix + "selection_json")
        if data is None or data.numel() == 0:
            return
        self.choose(json.loads(bytes(data.detach().cpu().to(torch.uint8).numpy().tobytes())))

    def load_state_dict(  # type: ignore[override]
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """Apply the state's choice, then load it."""
        self.apply_saved_choice(state_dict)
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._size_trunk()
        return result

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ) -> None:  # type: ignore[no-untyped-def]
        key = prefix + "selection_json"
        if key in state_dict:  # a byte buffer whose size is the saved choice's
            self.selection_json = state_dict[key].detach().clone().to(torch.uint8)
        super()._load_from_state_dict(
            {k: v for k, v in state_dict.items() if k != key},
            prefix,
            local_metadata,
            strict,
            missing_keys,
            unexpected_keys,
            error_msgs,
        )
        if key in missing_keys:
            missing_keys.remove(key)

    # -- what the stages ask of a teacher ----------------------------------------------------------
    def _task_candidate(self, task: str) -> str:
        choice = self.choice
        if task in choice:
            return choice[task]
        return "network" if len(self.members) else self.candidates[task][0]

    def _space_candidates(self, space: str) -> list[str]:
        choice = self.choice
        used = {choice[t] for t in choice if self._reads(choice[t], space)}
        return [c for c in CANDIDATE_ORDER if c in used]

    def _reads(self, name: str, space: str) -> bool:
        try:
            return self.candidate(name).has_stem(space)
        except KeyError:
            return False

    def has_stem(self, space: str) -> bool:
        """Whether a chosen candidate reads inputs of ``space``."""
        if not self.choice:
            return bool(len(self.members)) and self.members[0].has_stem(space)
        return bool(self._space_candidates(space))

    def has_head(self, task: str) -> bool:
        """Whether a chosen candidate predicts ``task``."""
        if not self.choice:
            return bool(len(self.members)) and self.members[0].has_head(task)
        return task in self.choice

    def _block_width(self, name: str) -> int:
        if name == "network":
            return int(self.members[0].trunk.out_features)
        if name == "ensemble":
            return int(self.members[0].trunk.out_features) * len(self.members)
        module = self.candidate(name)
        return int(module.trunk.out_features)

    def features(self, x: torch.Tensor, space: str) -> torch.Tensor:
        """Each chosen candidate reading ``space`` fills its block of columns."""
        if not self.choice:
            raise RuntimeError("the auto teacher has not chosen its candidates yet")
        out = x.new_zeros(len(x), self.trunk.out_features, dtype=torch.float32)
        start = 0
        reading = set(self._space_candidates(space))
        for name in self.chosen:
            width = self._block_width(name)
            if name in reading:
                block = self.candidate(name).features(x, space)
                out[:, start : start + width] = block.float()
            start += width
        return self.trunk(out)

    def forward(self, x: torch.Tensor, space: str, task: str) -> torch.Tensor:
        """The logits of ``task``'s chosen candidate (the feature layer runs too when a
        hook reads it)."""
        if self.trunk._forward_hooks:
            self.features(x, space)
        name = self._task_candidate(task)
        if name == "ensemble":
            return mean_probability_logits([m(x, space, task) for m in self.members])
        return self.candidate(name)(x, space, task)

    # -- size -------------------------------------------------------------------------------------
    @property
    def variable_size_state(self) -> bool:
        """Whether its state holds byte buffers whose size depends on the fit."""
        return True

    @property
    def not_exportable(self) -> str | None:
        """Why PyTorch's ONNX exporter cannot capture it (a chosen ``hist_gbm``), or None."""
        return EstimatorTeacher.not_exportable if self.trees is not None else None

    def parameter_count(self) -> int:
        """The chosen candidates' parameters (tree nodes for ``hist_gbm``)."""
        count = sum(count_parameters(m) for m in self.members)
        count += count_parameters(self.linear) if self.linear is not None else 0
        return count + (self.trees.parameter_count() if self.trees is not None else 0)

    def size_bytes(self) -> int:
        """What the chosen candidates take as saved."""
        nets = [*self.members, *([self.linear] if self.linear is not None else [])]
        size = sum(p.numel() * p.element_size() for m in nets for p in m.parameters())
        return size + (self.trees.size_bytes() if self.trees is not None else 0)
