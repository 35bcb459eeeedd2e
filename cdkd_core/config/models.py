"""The pipeline config models: the strict pydantic schema every config is checked against
(loading, overrides and dumping live in :mod:`cdkd_core.config.loading`)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cdkd_core.components.strict_numbers import NoBoolNumbers

#: a run name: the start of its run directory's name, which may not leave the output root
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

Role = Literal["source", "target", "unseen"]

#: the largest ``seed`` (numpy's legacy ``RandomState`` takes seeds below 2**32)
MAX_SEED = 2**32 - 1


class _Strict(NoBoolNumbers):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ComponentRef(_Strict):
    """A component by name, with params checked against its own ``Config``."""

    name: str = Field(
        description=(
            "Registered component name; '<plugin>:<name>' picks one plugin's component "
            "when two plugins register the name."
        )
    )
    params: dict[str, Any] = Field(default_factory=dict, description="The component's params.")


class DomainEntry(_Strict):
    """One domain of the pipeline and its role."""

    name: str = Field(
        description=(
            "Registered domain name, e.g. 'sklearn.wine' ('<plugin>:<name>' when two "
            "plugins register it)."
        )
    )
    alias: str | None = Field(
        None, description="Name used in results (default: name, without a '<plugin>:')."
    )
    role: Role = Field("source", description="source | target | unseen.")
    weight: float = Field(1.0, gt=0, description="Weight of the domain's task loss.")
    label_fraction: float | None = Field(
        None,
        ge=0,
        le=1,
        description="target only: stratified fraction of train labels the student may use.",
    )
    shots: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description=(
            "target only, instead of label_fraction: k labelled train examples per class "
            "(few-shot; all of a class with fewer), stratified and fixed by the seed; the "
            "val split used for model selection is cut to k per class too."
        ),
    )
    params: dict[str, Any] = Field(default_factory=dict, description="The domain's params.")

    @model_validator(mode="after")
    def _fraction_for_targets(self) -> DomainEntry:
        if self.label_fraction is not None and self.role != "target":
            raise ValueError(f"label_fraction applies to role 'target' only, not {self.role!r}")
        return self

    @field_validator("shots")
    @classmethod
    def _shots(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None:
            return value
        role = info.data.get("role")
        if role is not None and role != "target":
            raise ValueError(f"shots applies to role 'target' only, not {role!r}")
        if info.data.get("label_fraction") is not None:
            raise ValueError(
                "shots and label_fraction are exclusive: give a target k labelled examples "
                "per class (shots) or a fraction of its labels (label_fraction), not both"
            )
        return value

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str | None) -> str | None:
        if value is not None and not RUN_NAME.match(value):
            raise ValueError(f"alias {value!r} must match {RUN_NAME.pattern}")
        return value

    @property
    def key(self) -> str:
        """The domain's name in results (a ``<plugin>:`` qualifier is not part of it)."""
        return self.alias or self.name.rpartition(":")[2]

    @property
    def fraction(self) -> float:
        """Fraction of train labels the student uses (1 for sources, 0 for unseen); a
        few-shot target (``shots``) is not cut by it (see
        :func:`~cdkd_core.data.splits.shots_mask`)."""
        if self.role == "unseen":
            return 0.0
        return 1.0 if self.label_fraction is None else self.label_fraction


class MamlConfig(_Strict):
    """Meta-learning of the teacher over its source domains as tasks (teacher.maml):
    Reptile (Nichol, Achiam & Schulman 2018, "On First-Order Meta-Learning Algorithms")
    or first-order MAML (Finn, Abbeel & Levine 2017, "Model-Agnostic Meta-Learning for
    Fast Adaptation of Deep Networks"), then multi-task fine-tuning with val model
    selection."""

    algorithm: Literal["reptile", "fomaml"] = Field(
        description="reptile: move toward the task-adapted weights; fomaml: first-order MAML."
    )
    meta_steps: int = Field(200, ge=1, le=1_000_000, description="Outer (meta) iterations.")
    inner_steps: int = Field(
        5, ge=1, le=1000, description="Optimiser steps of the inner loop on one task (k)."
    )
    inner_lr: float = Field(1e-3, gt=0, le=10.0, description="Step size of the inner loop.")
    inner_optimizer: Literal["sgd", "adam"] = Field(
        "adam",
        description=(
            "Inner-loop optimiser, fresh for every task: adam (betas 0, 0.999, as in the "
            "Reptile paper) or plain sgd (as in MAML)."
        ),
    )
    meta_lr: float | None = Field(
        None,
        gt=0,
        le=10.0,
        description=(
            "Outer step size. reptile: epsilon in theta <- theta + epsilon (theta_task - "
            "theta), at most 1 (default 0.5); fomaml: Adam's step size on the meta-gradient "
            "(default 0.001)."
        ),
    )
    meta_lr_schedule: Literal["linear", "constant"] = Field(
        "linear", description="linear: the outer step size decays to 0 over meta_steps."
    )
    tasks_per_step: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description=(
            "Source domains sampled (without replacement) per meta step, their updates "
            "averaged (default, or more than there are: every source domain)."
        ),
    )
    support_size: int = Field(
        32,
        ge=1,
        le=1_000_000,
        description=(
            "Examples per inner-loop batch: reptile draws a fresh batch for every inner "
            "step; fomaml adapts on one support batch of this size."
        ),
    )
    query_size: int = Field(
        32,
        ge=1,
        le=1_000_000,
        description="fomaml: examples of the query batch the meta-gradient is taken on.",
    )
    finetune_epochs: int | None = Field(
        None,
        ge=0,
        le=100_000,
        description=(
            "Epochs of ordinary multi-task training after meta-training, with val model "
            "selection (default: half the teacher epochs, at least 1; 0: none)."
        ),
    )
    log_every: int = Field(
        10, ge=1, le=1_000_000, description="Log meta-training losses every this many steps."
    )

    @model_validator(mode="after")
    def _meta_lr(self) -> MamlConfig:
        if self.algorithm == "reptile" and self.meta_lr is not None and self.meta_lr > 1:
            raise ValueError(
                f"meta_lr {self.meta_lr} for reptile: the interpolation step must be in (0, 1]"
            )
        return self

    @property
    def outer_lr(self) -> float:
        """The outer step size (``meta_lr`` or the algorithm's default)."""
        if self.meta_lr is not None:
            return self.meta_lr
        return 0.5 if self.algorithm == "reptile" else 1e-3


class ModelSpec(_Strict):
    """A teacher or student: stems per modality (defaults per modality), a trunk, heads."""

    trunk: ComponentRef = Field(description="The shared trunk.")
    stems: dict[str, ComponentRef] = Field(
        default_factory=dict,
        description="Stem per modality (e.g. image: {name: cnn}); others use the default.",
    )
    head: ComponentRef | None = Field(
        None, description="Architecture building the heads per task (default: a linear layer)."
    )
    feature_layer: str = Field(
        "trunk", description="Module path whose output is read as features by a forward hook."
    )
    checkpoint: str | None = Field(
        None,
        description=(
            "Teacher only: a teacher.safetensors from an earlier run with the same teacher and "
            "source domains; the teacher is loaded from it instead of trained, so many "
            "students can be distilled from one teacher."
        ),
    )


class EnsembleConfig(_Strict):
    """``teacher.ensemble``: K teachers of one architecture, distilled as one."""

    members: int = Field(
        ge=2,
        le=64,
        description="Teachers trained, each from its own seed (member 0 from the run's seed).",
    )
    bagging: bool = Field(
        False,
        description=(
            "Each member trains on a bootstrap resample of every source domain's labelled "
            "train rows (drawn with replacement from its own seed); false: on all of them."
        ),
    )
    features: Literal["concat", "mean"] = Field(
        "concat",
        description=(
            "The ensemble's feature layer (``trunk``, what the encoder reads): the members' "
            "trunk features concatenated (width K x trunk width), or their mean."
        ),
    )


#: the candidates ``teacher.auto`` may choose among, cheapest first (ties go to the earlier)
TEACHER_CANDIDATES = ("linear", "network", "ensemble", "hist_gbm")

TeacherCandidate = Literal["linear", "network", "ensemble", "hist_gbm"]


class AutoTeacherConfig(_Strict):
    """``teacher: auto``: for each task whose source domains are tables, candidate teachers
    are fitted on the train rows and the one with the best val headline is kept (ties go to
    the cheaper: linear, network, ensemble, hist_gbm). A task of other modalities gets the
    network."""

    candidates: list[TeacherCandidate] = Field(
        default_factory=lambda: list(TEACHER_CANDIDATES),
        min_length=1,
        description=(
            "linear: logistic regression on the standardised features, written as a network "
            "(its L2 strength chosen on val); network: the trunk and stems below; ensemble: "
            "ensemble_members networks of that architecture (member 0 is the network); "
            "hist_gbm: gradient-boosted trees."
        ),
    )
    ensemble_members: int = Field(
        5, ge=2, le=64, description="Members of the ensemble candidate (each its own seed)."
    )

    @field_validator("candidates")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        dupes = sorted({c for c in value if value.count(c) > 1})
        if dupes:
            raise ValueError(f"candidates listed twice: {dupes}")
        return [c for c in TEACHER_CANDIDATES if c in value]  # cheapest first


#: stands for a teacher's missing trunk until its validator refuses it
_TRUNK_REQUIRED = object()


class TeacherSpec(ModelSpec):
    """The teacher: a network (stems, trunk, heads; how it is trained, maml; whether it is
    an ensemble), or a whole classical model (``model``)."""

    trunk: ComponentRef | None = Field(  # type: ignore[assignment]
        None, description="The shared trunk (required unless model names a whole teacher)."
    )
    model: ComponentRef | None = Field(
        None,
        description=(
            "A whole classical teacher instead of stems, trunk and heads, e.g. {name: "
            "hist_gbm}: fitted on the sources' train split, chosen on their val split; its "
            "class probabilities are the soft labels (default null: a network)."
        ),
    )

    auto: AutoTeacherConfig | None = Field(
        None,
        description=(
            "Choose the teacher per task on val among candidates (the default teacher; "
            "write teacher: auto, or {auto: {candidates: [...]}, trunk, stems} to set the "
            "network candidate); null: the teacher written here."
        ),
    )
    maml: MamlConfig | None = Field(
        None,
        description=(
            "Meta-learn the teacher over the source domains (reptile or fomaml) before its "
            "multi-task training (default null: multi-task training only)."
        ),
    )
    ensemble: EnsembleConfig | None = Field(
        None,
        description=(
            "K teachers whose averaged class probabilities are the soft labels and whose "
            "joined features the encoder reads: an integer K, or {members: K, bagging, "
            "features} (default null: one teacher)."
        ),
    )
    adapt: Literal["probe", "none"] = Field(
        "probe",
        description=(
            "probe: before distilling, the teacher adapts to each target's labelled train "
            "rows through a residual linear head on its features (its own logits for the "
            "task plus a linear map, L2 strength chosen on the target's labelled val rows); "
            "the target's soft labels come from it. none: the source-trained teacher as it "
            "is (zero-shot studies)."
        ),
    )

    @field_validator("ensemble", mode="before")
    @classmethod
    def _ensemble_size(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("write the number of members (an integer, e.g. 5), not true/false")
        if isinstance(value, int):
            if value < 1:
                raise ValueError(f"{value}: an ensemble has at least 1 member")
            return None if value == 1 else {"members": value}
        return value

    @field_validator("ensemble")
    @classmethod
    def _ensemble_trained(
        cls, value: EnsembleConfig | None, info: ValidationInfo
    ) -> EnsembleConfig | None:
        if value is not None and info.data.get("maml") is not None:
            raise ValueError(
                "an ensemble's members are trained multi-task, each from its own seed; "
                "teacher.maml meta-trains one teacher: use one or the other"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _trunk_unless_model(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("model") is None and data.get("trunk") is None:
            return {**data, "trunk": _TRUNK_REQUIRED}  # refused by _trunk, at its path
        return data

    @field_validator("trunk", mode="before")
    @classmethod
    def _trunk(cls, value: Any) -> Any:
        if value is _TRUNK_REQUIRED:
            raise ValueError(
                "Field required for a network teacher (or write teacher.model for a whole "
                "classical teacher such as {name: hist_gbm})"
            )
        return value

    @model_validator(mode="after")
    def _auto_alone(self) -> TeacherSpec:
        if self.auto is None:
            return self
        for part in ("model", "ensemble", "maml"):
            if getattr(self, part) is not None:
                raise ValueError(
                    f"teacher.auto chooses among candidates (ensemble and hist_gbm among "
                    f"them), so teacher.{part} does not apply; drop one of them"
                )
        return self

    @model_validator(mode="after")
    def _network_or_model(self) -> TeacherSpec:
        if self.model is None:
            return self
        network_parts = {
            "trunk": self.trunk is not None,
            "stems": bool(self.stems),
            "head": self.head is not None,
            "maml": self.maml is not None,
            "ensemble": self.ensemble is not None,
            "feature_layer": self.feature_layer != "trunk",
        }
        given = [k for k, v in network_parts.items() if v]
        if given:
            raise ValueError(
                f"model: {self.model.name!r} is a whole teacher, so teacher.{given[0]} does not "
                "apply; drop it (the model's params say how it is fitted)"
            )
        return self


class StudentSpec(ModelSpec):
    """The student: a model spec, and how its input layers are initialised."""

    weight_init: Literal["random", "teacher_pca", "teacher_tokens"] = Field(
        "random",
        description=(
            "random: the architectures' own initialisation; teacher_pca: each stem's first "
            "layer starts from the principal components of the teacher's corresponding "
            "layer; teacher_tokens: a token stem's table starts from every vocabulary entry "
            "passed through the teacher, PCA-reduced to its width and frequency-weighted "
            "(the baseline stays random in both)."
        ),
    )
    weight_init_layers: Literal["auto"] | list[str] = Field(
        "auto",
        description=(
            "teacher_pca only: auto (every stem whose first layer pairs with the teacher's) "
            "or student module paths, e.g. [stems.sklearn~wine]."
        ),
    )

    @field_validator("weight_init_layers", mode="before")
    @classmethod
    def _layers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and value != "auto":
            raise ValueError(f"{value!r}: write auto or a list of module paths")
        if isinstance(value, list) and not value:
            raise ValueError("name at least one module path, or auto")
        if value != "auto" and info.data.get("weight_init") != "teacher_pca":
            raise ValueError("applies to weight_init: teacher_pca only")
        return value


class TrainConfig(_Strict):
    """Optimisation settings shared by the stages."""

    epochs: int = Field(20, ge=1, description="Epochs of each training stage.")
    teacher_epochs: int | None = Field(
        None,
        ge=1,
        description=(
            "Teacher epochs (default: epochs; when neither is set and every source domain "
            "is a table, the tabular recipe's 60)."
        ),
    )
    batch_size: int = Field(128, ge=1)
    eval_batch_size: int = Field(1024, ge=1)
    lr: float = Field(1e-3, gt=0, description="Student learning rate.")
    teacher_lr: float | None = Field(
        None,
        gt=0,
        description=(
            "Teacher lr (default: lr; when neither is set and every source domain is a "
            "table, the tabular recipe's 0.003)."
        ),
    )
    weight_decay: float = Field(1e-4, ge=0)
    scheduler: Literal["constant", "cosine"] = "cosine"
    patience: int | None = Field(
        None, ge=1, description="Stop after this many epochs without val improvement."
    )
    teacher_patience: int | None = Field(
        None,
        ge=1,
        description=(
            "The teacher's patience (default: patience; when neither is set and every "
            "source domain is a table, the tabular recipe's 15)."
        ),
    )
    grad_clip: float | None = Field(5.0, gt=0, description="Max gradient norm (none: off).")
    checkpoints: bool = Field(
        True,
        description=(
            "Write a checkpoint after every epoch and round (for cdkd run --resume); "
            "false: none (a stopped run then starts over)."
        ),
    )
    checkpoint_steps: int | None = Field(
        None,
        ge=1,
        description="Also checkpoint every this many optimiser steps within an epoch.",
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32",
        description=(
            "fp32, or mixed precision for the training steps: bf16 (CPU or GPU) or fp16 "
            "(CUDA only, with loss scaling); evaluation stays in fp32."
        ),
    )
    teacher_gate: Literal["auto", "above", "val", "none"] = Field(
        "auto",
        description=(
            "Which domains get the teacher's soft labels, decided on their labelled val "
            "rows every round (paired bootstrap against the no-teacher baseline). above: "
            "only where the teacher (adapted, on a target) is above the baseline with 90% "
            "confidence; elsewhere the student falls back to its labels alone. val: all but "
            "where the teacher is below the baseline with 95% confidence (its labels and the "
            "knowledge vectors still train the student there). none: every domain. auto: "
            "above for tables, none for other modalities."
        ),
    )
    label_shift: Literal["bbse", "em", "none"] = Field(
        "bbse",
        description=(
            "Each target's class prior: its labelled rows' class shares where they are a "
            "stratified label_fraction, else estimated from its unlabelled train rows by "
            "bbse (Lipton et al. 2018, from held-out val rows) or em (Saerens et al. 2002); "
            "the teacher's soft labels and the student's decision rule on the target are "
            "moved onto it (summary.json: label_shift). none: neither."
        ),
    )
    log_to: list[Literal["jsonl", "tensorboard"]] = Field(
        ["jsonl"],
        description=(
            "Where metrics go: jsonl (RUN_DIR/metrics.jsonl, always written) and tensorboard "
            "(event files in RUN_DIR/tb/; needs pip install 'cdkd[tensorboard]')."
        ),
    )
    device: str = Field(
        "auto",
        description=(
            "auto | cpu | cuda | cuda:N | mps. A device this machine lacks (no CUDA device, "
            "an N beyond the GPUs torch sees, no MPS) is refused before the run starts."
        ),
    )
    threads: int | None = Field(
        None,
        ge=1,
        description=(
            "CPU threads for torch during the run (default: torch's); more than this "
            "machine's CPUs (os.cpu_count()) is refused before the run starts."
        ),
    )
    deterministic: bool = Field(
        False,
        description=(
            "Use torch's deterministic algorithms during the run "
            "(torch.use_deterministic_algorithms; on CUDA also a fixed cuBLAS workspace), so "
            "a seed gives the same numbers on machines of one kind with the same threads; "
            "the quickstart sets it. Slower for some GPU kernels."
        ),
    )
    out_of_core: Literal["auto", "memory", "disk"] = Field(
        "auto",
        description=(
            "Where large derived arrays (standardised inputs, a quiz split, teacher features "
            "and logits, knowledge vectors) live: memory (RAM), disk (memory-mapped files in "
            "RUN_DIR/cache/), or auto: disk for arrays above out_of_core_mb and for arrays "
            "derived from memory-mapped inputs (the arrays domain)."
        ),
    )
    out_of_core_mb: float = Field(
        1024.0, gt=0, description="auto: arrays larger than this many MiB go to disk."
    )

    @field_validator("log_to")
    @classmethod
    def _log_to(cls, value: list[str]) -> list[str]:
        if "tensorboard" in value:
            from cdkd_core.config.machine import tensorboard_missing

            missing = tensorboard_missing()
            if missing is not None:
                raise ValueError(missing)
        return list(dict.fromkeys(["jsonl", *value]))

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value in ("auto", "cpu", "mps", "cuda") or (
            value.startswith("cuda:") and value[5:].isdigit()
        ):
            return value
        raise ValueError(f"device {value!r}: choose auto, cpu, cuda, cuda:N or mps")


class LossEntry(ComponentRef):
    """A weighted loss term."""

    weight: float = Field(1.0, ge=0, description="Weight of this term in the student loss.")


def _default_losses() -> list[LossEntry]:
    return [LossEntry(name="ce"), LossEntry(name="kd", params={"temperature": 4.0})]


def _default_teacher() -> TeacherSpec:
    """The teacher of a config without ``teacher:`` (or with ``teacher: auto``): chosen per
    task on val among the candidates of :class:`AutoTeacherConfig`, its network candidate a
    128-wide network whose tabular stem has dropout 0.3 and whose trunk adds no block
    (chosen on the val split of the tabular benchmark domains, benchmarks/tabular_teacher.md:
    deeper teachers overfit tables within a few epochs)."""
    return TeacherSpec(
        auto=AutoTeacherConfig(),
        trunk=ComponentRef(name="mlp", params={"width": 128, "depth": 0}),
        stems={"tabular": ComponentRef(name="mlp", params={"dropout": 0.3})},
    )


def _teacher_auto(value: Any) -> Any:
    """``teacher: auto``: the default teacher (candidates chosen on val per task)."""
    if value == "auto":
        return _default_teacher()
    return value


#: The training settings of a teacher for tables, chosen with the default teacher
#: (benchmarks/tabular_teacher.md): what ``teacher_lr``, ``teacher_epochs`` and
#: ``teacher_patience`` are when the config leaves them (and ``epochs``) unset and every
#: source domain is a table; ``cdkd init`` writes them.
DEFAULT_TEACHER_TRAIN: dict[str, Any] = {
    "teacher_lr": 0.003,
    "teacher_epochs": 60,
    "teacher_patience": 15,
}


def _default_student() -> StudentSpec:
    return StudentSpec(trunk=ComponentRef(name="mlp", params={"width": 32, "depth": 1}))


class PipelineConfig(_Strict):
    """A whole pipeline: domains, teacher, student, encoder, losses, feedback, training."""

    name: str = Field("cdkd", description="Run name (the run directory starts with it).")
    seed: int = Field(
        0,
        ge=0,
        le=MAX_SEED,
        description=(
            "Seed of every random choice (0 to 2**32 - 1, numpy's legacy seed range; the "
            "seeds derived from it, e.g. seed * 1000 + i per domain, stay far below torch's "
            "2**63)."
        ),
    )
    domains: list[DomainEntry] = Field(min_length=1)
    teacher: TeacherSpec = Field(default_factory=_default_teacher)
    student: StudentSpec = Field(default_factory=_default_student)
    encoder: ComponentRef = Field(
        default_factory=lambda: ComponentRef(name="pca", params={"dim": 32})
    )
    losses: list[LossEntry] = Field(default_factory=_default_losses, min_length=1)
    feedback: ComponentRef = Field(default_factory=lambda: ComponentRef(name="none"))
    train: TrainConfig = Field(default_factory=TrainConfig)

    @field_validator("teacher", mode="before")
    @classmethod
    def _teacher(cls, value: Any) -> Any:
        return _teacher_auto(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not RUN_NAME.match(value):
            raise ValueError(
                f"{value!r} is not a safe run name: letters, digits, '.', '_', '-', "
                "starting with a letter or digit, at most 128 characters"
            )
        return value

    # field validators (not one model validator) so that errors carry the field's path
    @field_validator("domains")
    @classmethod
    def _roles(cls, domains: list[DomainEntry]) -> list[DomainEntry]:
        keys = [d.key for d in domains]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"domain names must be unique (use alias): {dupes}")
        if not any(d.role == "source" for d in domains):
            raise ValueError("at least one domain needs role 'source' (the teacher learns it)")
        return domains

    @field_validator("student")
    @classmethod
    def _student(cls, student: StudentSpec, info: ValidationInfo) -> StudentSpec:
        if student.checkpoint is not None:
            raise ValueError(
                "student.checkpoint: only the teacher can be loaded from a checkpoint "
                "(the student is trained from scratch, beside its baseline)"
            )
        teacher = info.data.get("teacher")
        if student.weight_init == "teacher_pca" and teacher is not None:
            if teacher.ensemble is not None:
                raise ValueError(
                    "weight_init: teacher_pca starts each stem from one teacher network's "
                    f"layer, and teacher.ensemble has {teacher.ensemble.members}; use random"
                )
            if teacher.model is not None:
                raise ValueError(
                    "weight_init: teacher_pca starts each stem from a teacher network's "
                    f"layer, and teacher.model {teacher.model.name!r} has none; use random"
                )
        return student
