"""The ``meta`` feedback strategy: learning to teach, after MetaDistil (Zhou, Xu & McAuley,
"BERT Learns to Teach: Knowledge Distillation with Meta Learning", ACL 2022).

The teacher is trained while the student learns, towards soft labels that make the
student's *next* step good on held-out quiz data. With student parameters ``θ``, teacher
parameters ``φ`` and the student's distillation loss on the current training batch

    L_distil(θ, φ) = CE(s_θ(x), y)[labelled] + T² · KL(softmax(t_φ(x)/T) ‖ softmax(s_θ(x)/T)),

a *pilot* student takes one SGD step, ``θ'(φ) = θ - η · ∇_θ L_distil(θ, φ)``, and the
teacher follows the gradient of the pilot's quiz loss ``L_quiz(θ') = CE(s_θ'(x_q), y_q)``:

    ∇_φ L_quiz(θ'(φ)) = -η · ∇_φ [∇_θ L_distil(θ, φ) · v],   v = ∇_θ' L_quiz(θ').

``meta_gradient`` computes it exactly (second order, ``torch.func.functional_call`` and
``torch.autograd.grad(create_graph=True)``), or with ``first_order=True`` replaces the
mixed Hessian-vector product by a central finite difference (Liu, Simonyan & Yang,
DARTS, ICLR 2019, eq. 8), which needs first-order gradients only:

    ∇_φ L_quiz(θ') ≈ -η · [∇_φ L_distil(θ + εv, φ) - ∇_φ L_distil(θ - εv, φ)] / (2ε),
    ε = fd_scale / ‖v‖,

whose error is O(ε²) (third derivatives of ``L_distil``); nothing else is dropped. The
real student is never changed: the pilot runs on functional copies of its parameters.

Some PyTorch operations have no second derivative (``nn.EmbeddingBag``, the nlp plugin's
student text stem, has neither a double backward nor forward-mode AD); for a student with
one, the strategy warns once and uses the first-order meta-gradient.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.func import functional_call
from torch.nn.parallel import DistributedDataParallel

from cdkd_core.components.feedback import FeedbackDomain, FeedbackStrategy, StudentStep
from cdkd_core.nets.reading import eval_mode

#: seed of the quiz batch sampler, the same every round (and on resume) so a run's
#: numbers do not depend on where it was stopped
QUIZ_SEED = 8191


def distil_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    labelled: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """The pilot's ``L_distil``: ``T² · KL(p_t ‖ p_s)`` over the batch (batch mean, as the
    ``kd`` loss) plus cross-entropy on the labelled examples."""
    temp = temperature
    loss = temp**2 * F.kl_div(
        F.log_softmax(student_logits / temp, dim=1),
        F.log_softmax(teacher_logits / temp, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    if bool(labelled.any()):
        loss = loss + F.cross_entropy(student_logits[labelled], labels[labelled])
    return loss


@dataclass
class MetaGradient:
    """``grads``: ``∇_φ L_quiz(θ'(φ))`` for each teacher parameter passed (zeros where the
    batch does not reach it); ``quiz_loss``: the pilot student's quiz loss ``L_quiz(θ')``."""

    grads: list[torch.Tensor]
    quiz_loss: float


def _unwrap(student: nn.Module) -> nn.Module:
    return student.module if isinstance(student, DistributedDataParallel) else student


def _grads_or_zeros(
    grads: tuple[torch.Tensor | None, ...] | list[torch.Tensor | None], like: list[torch.Tensor]
) -> list[torch.Tensor]:
    return [torch.zeros_like(w) if g is None else g for g, w in zip(grads, like, strict=True)]


@dataclass
class _MetaProblem:
    """One meta-gradient's inputs: the student as a function of its trainable parameters
    ``theta`` (``variables``, in ``names`` order; the rest held in ``constants``), the
    teacher's logits and parameters, the batch, the quiz batch and the pilot step."""

    student: nn.Module
    variables: dict[str, torch.Tensor]
    constants: dict[str, torch.Tensor]
    space: str
    task: str
    teacher_logits: torch.Tensor
    teacher_params: list[torch.Tensor]
    student_x: torch.Tensor
    labels: torch.Tensor
    labelled: torch.Tensor
    quiz_x: torch.Tensor
    quiz_y: torch.Tensor
    pilot_lr: float
    temperature: float
    retain_graph: bool

    @property
    def names(self) -> list[str]:
        return list(self.variables)

    def logits(self, theta: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(
            self.student, {**self.constants, **theta}, (x, self.space, self.task)
        )

    def distil(self, theta: dict[str, torch.Tensor], teacher_logits: torch.Tensor) -> torch.Tensor:
        """``L_distil`` of the student at ``theta`` on the batch."""
        return distil_loss(
            self.logits(theta, self.student_x),
            teacher_logits,
            self.labels,
            self.labelled,
            self.temperature,
        )


def _second_order(problem: _MetaProblem) -> MetaGradient:
    """The exact meta-gradient: through the pilot step's graph (``create_graph``)."""
    names, theta = problem.names, list(problem.variables.values())
    inner = problem.distil(problem.variables, problem.teacher_logits)
    g = torch.autograd.grad(inner, theta, create_graph=True, allow_unused=True)
    pilot = {
        n: w if gi is None else w - problem.pilot_lr * gi
        for n, w, gi in zip(names, theta, g, strict=True)
    }
    quiz = F.cross_entropy(problem.logits(pilot, problem.quiz_x), problem.quiz_y)
    params = problem.teacher_params
    grads = torch.autograd.grad(quiz, params, allow_unused=True, retain_graph=problem.retain_graph)
    return MetaGradient(_grads_or_zeros(grads, params), float(quiz.detach()))


def _first_order(problem: _MetaProblem, fd_scale: float) -> MetaGradient:
    """The pilot from a plain gradient, then a finite-difference Hessian-vector product
    (DARTS eq. 8)."""
    names, theta = problem.names, list(problem.variables.values())
    params, lr = problem.teacher_params, problem.pilot_lr
    inner = problem.distil(problem.variables, problem.teacher_logits.detach())
    g = _grads_or_zeros(torch.autograd.grad(inner, theta, allow_unused=True), theta)
    pilot = {
        n: (w - lr * gi).detach().requires_grad_() for n, w, gi in zip(names, theta, g, strict=True)
    }
    quiz = F.cross_entropy(problem.logits(pilot, problem.quiz_x), problem.quiz_y)
    v = _grads_or_zeros(torch.autograd.grad(quiz, list(pilot.values()), allow_unused=True), theta)
    norm = torch.sqrt(sum((vi.double() ** 2).sum() for vi in v))
    if float(norm) == 0.0:
        return MetaGradient([torch.zeros_like(p) for p in params], float(quiz.detach()))
    eps = fd_scale / float(norm)
    sides = []
    for sign, keep in ((1.0, True), (-1.0, problem.retain_graph)):
        shifted = {
            n: (w + sign * eps * vi).detach() for n, w, vi in zip(names, theta, v, strict=True)
        }
        loss = problem.distil(shifted, problem.teacher_logits)
        side = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=keep)
        sides.append(_grads_or_zeros(side, params))
    grads = [-lr * (gp - gm) / (2 * eps) for gp, gm in zip(*sides, strict=True)]
    return MetaGradient(grads, float(quiz.detach()))


def meta_gradient(
    student: nn.Module,
    teacher_logits: torch.Tensor,
    teacher_params: list[torch.Tensor],
    *,
    space: str,
    task: str,
    student_x: torch.Tensor,
    labels: torch.Tensor,
    labelled: torch.Tensor,
    quiz_x: torch.Tensor,
    quiz_y: torch.Tensor,
    pilot_lr: float,
    temperature: float,
    first_order: bool = False,
    fd_scale: float = 0.01,
    retain_graph: bool = False,
) -> MetaGradient:
    """The gradient of the pilot student's quiz loss w.r.t. ``teacher_params``.

    ``teacher_logits`` are the teacher's logits on the batch, with their graph to
    ``teacher_params``; ``student(x, space, task)`` gives student logits. The student runs
    in eval mode (no dropout, no batch-statistics updates) on functional copies of its
    parameters, so it is left exactly as it was. ``retain_graph`` keeps the graph of
    ``teacher_logits`` for a later backward (the teacher's own loss).
    """
    student = _unwrap(student)
    variables = {
        n: p.detach().requires_grad_() for n, p in student.named_parameters() if p.requires_grad
    }
    constants: dict[str, torch.Tensor] = {
        n: p.detach() for n, p in student.named_parameters() if n not in variables
    }
    constants.update(dict(student.named_buffers()))
    problem = _MetaProblem(
        student,
        variables,
        constants,
        space,
        task,
        teacher_logits,
        teacher_params,
        student_x,
        labels,
        labelled,
        quiz_x,
        quiz_y,
        pilot_lr,
        temperature,
        retain_graph,
    )
    with eval_mode(student):
        return _first_order(problem, fd_scale) if first_order else _second_order(problem)


class MetaDistil(FeedbackStrategy):
    """Learning to teach (MetaDistil, Zhou et al., ACL 2022): the teacher is trained, while
    the student learns, for the student's next step's result on a quiz split.

    Every ``meta_every`` student steps, on that step's batch: a pilot copy of the student
    takes one SGD step (``pilot_lr``) on ``CE + T²·KL(teacher ‖ student)``, its
    cross-entropy on a quiz batch (carved from training data; test data never reach it) is
    differentiated back through the pilot step to the teacher (second order, or a
    finite-difference approximation with ``first_order``), and the teacher takes an AdamW
    step on ``meta_weight · meta-gradient + CE(teacher, labels)``. The real student is not
    changed by the pilot; its ``kd`` term reads the current teacher. Domains where the
    teacher has no stem or head, or that have no quiz split (targets), get no update.
    """

    name = "meta"
    live_teacher = True
    needs_quiz = True

    class Config(FeedbackStrategy.Config):
        """Teacher optimiser, pilot step, quiz split and how often the teacher learns."""

        lr: float = Field(
            1e-4, gt=0, allow_inf_nan=False, description="Teacher AdamW learning rate."
        )
        pilot_lr: float = Field(
            0.1,
            gt=0,
            allow_inf_nan=False,
            description="SGD learning rate η of the pilot student step θ' = θ - η∇θ L_distil.",
        )
        temperature: float = Field(
            4.0,
            gt=0,
            allow_inf_nan=False,
            description="Softmax temperature of the pilot's KD term (use the kd loss's).",
        )
        quiz_fraction: float = Field(
            0.1, gt=0, lt=0.5, description="Share of each source's train split held out as quiz."
        )
        first_order: bool = Field(
            False,
            description="Finite-difference Hessian-vector product (DARTS) instead of the "
            "exact second-order meta-gradient: cheaper, O(ε²) error.",
        )
        meta_every: int = Field(
            1, ge=1, description="Update the teacher every this many student steps."
        )
        meta_weight: float = Field(
            1.0,
            ge=0,
            allow_inf_nan=False,
            description="Weight of the meta-gradient beside the teacher's own CE.",
        )
        quiz_batch_size: int | None = Field(
            None, ge=1, description="Quiz examples per meta step (default: the student's batch)."
        )
        weight_decay: float = Field(0.0, ge=0, description="Teacher AdamW weight decay.")

    def begin_round(self, teacher: nn.Module, domains: dict[str, FeedbackDomain]) -> None:
        """A fresh teacher optimiser, quiz sampler and step count for this round."""
        self._optimizer = torch.optim.AdamW(
            teacher.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay
        )
        self._generator = torch.Generator().manual_seed(QUIZ_SEED)
        self._steps = 0
        # found once per run (the student architecture does not change between rounds)
        self._no_second_order = getattr(self, "_no_second_order", False)
        self.last: dict[str, Any] = {}

    def state_dict(self) -> dict[str, Any]:
        """Optimiser, quiz sampler and step count (to resume a round mid-way)."""
        if getattr(self, "_optimizer", None) is None:
            return {}
        return {
            "optimizer": self._optimizer.state_dict(),
            "generator": self._generator.get_state(),
            "steps": self._steps,
            "no_second_order": self._no_second_order,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        if "optimizer" in state:
            self._optimizer.load_state_dict(state["optimizer"])
            self._generator.set_state(state["generator"])
            self._steps = int(state["steps"])
            self._no_second_order = bool(state.get("no_second_order", False))

    def student_step(self, teacher: nn.Module, step: StudentStep) -> None:
        """Every ``meta_every`` steps, one meta step of the teacher on the step's batch."""
        self._steps += 1
        if self._steps % self.config.meta_every:
            return
        if step.student is None or step.student_x is None:
            raise TypeError("the meta strategy needs StudentStep.student and .student_x")
        d, student = step.domain, _unwrap(step.student)
        if not (teacher.has_stem(d.space) and teacher.has_head(d.task)):
            return
        if not (student.has_stem(d.space) and student.has_head(d.task)):
            return
        if d.quiz is None or len(d.quiz) == 0:
            return
        device = step.teacher_x.device
        size = self.config.quiz_batch_size or len(step.labels)
        idx = torch.randperm(len(d.quiz), generator=self._generator)[:size]
        quiz_x, quiz_y = d.quiz.student_x[idx].to(device), d.quiz.y[idx].to(device)

        teacher.train()
        params = [p for p in teacher.parameters() if p.requires_grad]
        t_logits = teacher(step.teacher_x, d.space, d.task)
        meta, first_order = self._meta_gradient(student, t_logits, params, step, quiz_x, quiz_y)
        self._teacher_step(meta, params, t_logits, step)
        self.last = {
            "domain": d.name,
            "pilot_quiz_loss": meta.quiz_loss,
            "meta_grad_norm": float(torch.sqrt(sum((g.double() ** 2).sum() for g in meta.grads))),
            "first_order": first_order,
        }

    def _meta_gradient(
        self,
        student: nn.Module,
        t_logits: torch.Tensor,
        params: list[torch.Tensor],
        step: StudentStep,
        quiz_x: torch.Tensor,
        quiz_y: torch.Tensor,
    ) -> tuple[MetaGradient, bool]:
        """The step's meta-gradient and whether it is first order: second order unless
        configured or found impossible (an operation without a second derivative: warned
        once, then first order for the rest of the run)."""
        d = step.domain
        first_order = self.config.first_order or self._no_second_order

        def meta_step(first_order: bool) -> MetaGradient:
            return meta_gradient(
                student,
                t_logits,
                params,
                space=d.space,
                task=d.task,
                student_x=step.student_x,
                labels=step.labels,
                labelled=step.labelled,
                quiz_x=quiz_x,
                quiz_y=quiz_y,
                pilot_lr=self.config.pilot_lr,
                temperature=self.config.temperature,
                first_order=first_order,
                retain_graph=True,  # for the teacher's CE below (and a retry)
            )

        try:
            return meta_step(first_order), first_order
        except NotImplementedError as err:  # an operation without a second derivative
            if first_order:
                raise
            reason = str(err).splitlines()[0].rstrip(".")
            warnings.warn(
                f"feedback meta: the student has an operation without a second derivative "
                f"in PyTorch ({reason}); using the first-order (finite-difference) "
                "meta-gradient instead (first_order: true says so without this warning)",
                RuntimeWarning,
                stacklevel=3,
            )
            self._no_second_order = True
            return meta_step(True), True

    def _teacher_step(
        self,
        meta: MetaGradient,
        params: list[torch.Tensor],
        t_logits: torch.Tensor,
        step: StudentStep,
    ) -> None:
        """The teacher's AdamW step on ``meta_weight · meta-gradient + CE(teacher, labels)``."""
        # one backward for both terms (p.grad = meta_weight·meta + ∇CE), so gradient hooks
        # (the averaging of a distributed run) see every teacher gradient once
        weight = self.config.meta_weight
        loss = sum((weight * g.detach() * p).sum() for g, p in zip(meta.grads, params, strict=True))
        if bool(step.labelled.any()):
            loss = loss + F.cross_entropy(t_logits[step.labelled], step.labels[step.labelled])
        self._optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._optimizer.step()
