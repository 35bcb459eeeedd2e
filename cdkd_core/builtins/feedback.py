"""Built-in feedback strategies: ``none``, ``mutual``, ``hard_examples`` and ``meta``
(the last in :mod:`cdkd_core.builtins.meta_feedback`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from cdkd_core.components.domain import Split
from cdkd_core.components.feedback import (
    FeedbackContext,
    FeedbackDomain,
    FeedbackStrategy,
    StudentStep,
)
from cdkd_core.host.hookspecs import Register, hookimpl


class NoFeedback(FeedbackStrategy):
    """No feedback: the teacher stays as stage 1 left it (``rounds`` repeats stages 2-4)."""

    name = "none"
    updates_teacher = False


class MutualLearning(FeedbackStrategy):
    """Deep mutual learning (Zhang et al., CVPR 2018): the teacher also learns from the student.

    On every student step the teacher takes a step on the same batch with
    ``CE(teacher, labels) + T² · KL(softmax(s/T) ‖ softmax(t/T))`` (labelled examples for the
    CE term; the student's logits detached), and the student's ``kd`` term reads the current
    teacher instead of the cache. The teacher keeps these updates into the next round,
    whose knowledge is extracted from the updated teacher.
    """

    name = "mutual"
    live_teacher = True

    class Config(FeedbackStrategy.Config):
        """Teacher optimiser and temperature."""

        lr: float = Field(1e-4, gt=0, description="Teacher learning rate during mutual steps.")
        temperature: float = Field(1.0, gt=0, description="Temperature of the KL term.")
        kl_weight: float = Field(1.0, ge=0, description="Weight of the KL term.")
        weight_decay: float = Field(0.0, ge=0, description="Teacher AdamW weight decay.")

    def begin_round(self, teacher: nn.Module, domains: dict[str, FeedbackDomain]) -> None:
        """A fresh optimiser over the teacher for this round."""
        self._optimizer = torch.optim.AdamW(
            teacher.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay
        )

    def state_dict(self) -> dict:
        """The teacher optimiser's state (to resume a round mid-way)."""
        optimizer = getattr(self, "_optimizer", None)
        return {"optimizer": optimizer.state_dict()} if optimizer is not None else {}

    def load_state_dict(self, state: dict) -> None:
        """Restore the optimiser state saved by :meth:`state_dict`."""
        if "optimizer" in state:
            self._optimizer.load_state_dict(state["optimizer"])

    def student_step(self, teacher: nn.Module, step: StudentStep) -> None:
        """One teacher step on the student's batch."""
        d = step.domain
        if not (teacher.has_stem(d.space) and teacher.has_head(d.task)):
            return
        teacher.train()
        t_logits = teacher(step.teacher_x, d.space, d.task)
        temp = self.config.temperature
        loss = (
            self.config.kl_weight
            * temp**2
            * F.kl_div(
                F.log_softmax(t_logits / temp, dim=1),
                F.softmax(step.student_logits.detach() / temp, dim=1),
                reduction="batchmean",
            )
        )
        if bool(step.labelled.any()):
            loss = loss + F.cross_entropy(t_logits[step.labelled], step.labels[step.labelled])
        self._optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._optimizer.step()


class HardExamples(FeedbackStrategy):
    """Teacher fine-tuned with more weight where the student fails, on a held-out quiz split.

    After each round, the student's probability of the true class ``p`` is read on the quiz
    split of each source domain (carved from training data; neither model trained on it, and
    the test split is never touched). The teacher is then fine-tuned for ``epochs`` on its
    train split (weight 1) plus the quiz split with weights ``1 + boost · (1 - p)``, so the
    next round's soft labels and knowledge vectors are best where the student was worst.
    """

    name = "hard_examples"
    needs_quiz = True

    class Config(FeedbackStrategy.Config):
        """Rounds, quiz size and fine-tuning."""

        rounds: int = Field(2, ge=1, le=100, description="Rounds of extract-distill-evaluate.")
        quiz_fraction: float = Field(0.15, gt=0, lt=0.5, description="Quiz share of train.")
        boost: float = Field(4.0, ge=0, description="Extra weight of a fully missed example.")
        epochs: int = Field(3, ge=1, description="Teacher fine-tuning epochs per round.")
        lr: float = Field(1e-4, gt=0, description="Teacher fine-tuning learning rate.")

    def after_round(self, ctx: FeedbackContext) -> bool:
        """Weight quiz examples by the student's failure and fine-tune the teacher."""
        batches: dict[str, tuple[Split, torch.Tensor]] = {}
        for name, d in ctx.domains.items():
            if d.quiz is None or not ctx.student.has_head(d.task):
                continue
            probs = torch.softmax(ctx.predict(ctx.student, name, "quiz"), dim=1)
            p_true = probs.gather(1, d.quiz.y[:, None]).squeeze(1)
            quiz_w = 1.0 + self.config.boost * (1.0 - p_true)
            combined = Split(
                torch.cat([d.train.teacher_x, d.quiz.teacher_x]),
                torch.cat([d.train.student_x, d.quiz.student_x]),
                torch.cat([d.train.y, d.quiz.y]),
            )
            weights = torch.cat([torch.ones(len(d.train)), quiz_w])
            batches[name] = (combined, weights)
            ctx.log(
                event="hard_examples",
                domain=name,
                quiz_size=len(d.quiz),
                student_quiz_accuracy=float((probs.argmax(1) == d.quiz.y).float().mean()),
                mean_quiz_weight=float(quiz_w.mean()),
            )
        if not batches:
            return False
        ctx.finetune_teacher(batches, self.config.epochs, self.config.lr)
        return True


@hookimpl
def register_feedback(register: Register) -> None:
    """The core's own feedback strategies."""
    from cdkd_core.builtins.meta_feedback import MetaDistil

    for cls in (NoFeedback, MutualLearning, HardExamples, MetaDistil):
        register(cls)
