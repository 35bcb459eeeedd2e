"""The report's knowledge-space section: the teacher's knowledge vectors and the student's
features projected into that space, on two PCA panels, with how well they agree per domain."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from cdkd_core.artifacts.html import escape, html_table, img, td
from cdkd_core.artifacts.run_files import RunFiles, first_line

if TYPE_CHECKING:
    from cdkd_core.host.plugin_host import PluginHost


def pca_2d(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Mean and the top two principal directions ``[D, 2]`` of ``x`` (signs fixed: each
    direction's largest loading positive), and their shares of the variance."""
    x = x.double()
    mean = x.mean(0)
    centred = x - mean
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    components = vh[:2].T
    if components.shape[1] < 2:  # a 1-D knowledge space: the second axis is flat
        components = torch.cat([components, torch.zeros(x.shape[1], 1, dtype=x.dtype)], 1)
    signs = torch.sign(components.gather(0, components.abs().argmax(0, keepdim=True)))
    components = components * torch.where(signs == 0, 1.0, signs)
    variance = s.pow(2)
    total = float(variance.sum())
    shares = [float(v) / total if total > 0 else 0.0 for v in variance[:2]]
    return mean, components, shares + [0.0] * (2 - len(shares))


def least_squares_map(features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The least-squares affine map ``[F + 1, k]`` (weights, then the intercept row) from
    features to targets; the minimum-norm one where the features are collinear or fewer
    than their width."""
    x = torch.cat([features.double(), torch.ones(len(features), 1, dtype=torch.float64)], 1)
    return torch.linalg.lstsq(x, targets.double(), driver="gelsd").solution


def cross_fitted(features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Each row's prediction by a least-squares map fitted on the other half of the rows
    (even rows mapped by the fit on the odd ones and the reverse): out-of-sample for every
    row, so agreement measured on it is not flattered by the fit."""
    out = torch.empty(len(features), targets.shape[1], dtype=torch.float64)
    rows = torch.arange(len(features))
    for fold in (0, 1):
        fit_rows, held = rows[rows % 2 != fold], rows[rows % 2 == fold]
        if len(held) and len(fit_rows):
            out[held] = _affine(
                features[held], least_squares_map(features[fit_rows], targets[fit_rows])
            )
        elif len(held):
            out[held] = _affine(features[held], least_squares_map(features, targets))
    return out


def _affine(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    ones = torch.ones(len(features), 1, dtype=torch.float64)
    return torch.cat([features.double(), ones], 1) @ weights


def _r2(pred: torch.Tensor, target: torch.Tensor) -> float | None:
    target = target.double()
    total = float((target - target.mean(0)).pow(2).sum())
    if len(target) < 2 or total <= 0:
        return None
    return 1.0 - float((pred.double() - target).pow(2).sum()) / total


def _cosine(pred: torch.Tensor, target: torch.Tensor) -> float | None:
    if not len(target):
        return None
    return float(torch.nn.functional.cosine_similarity(pred.double(), target.double()).mean())


def knowledge_section(run: RunFiles, host: PluginHost) -> str:
    """The "Knowledge space" section, from the run's saved knowledge sample or, where it
    saved none, one recomputed from the run directory."""
    from cdkd_core.artifacts import knowledge_sample

    try:
        sample = knowledge_sample.read_knowledge_sample(run.run_dir)
    except Exception as exc:  # a torn or foreign file: recompute instead
        sample, unreadable = None, first_line(exc)
    else:
        unreadable = None
    if sample is None:
        try:
            sample = knowledge_sample.recompute_knowledge_sample(run.run_dir, host)
        except Exception as exc:  # missing plugin or data: the rest of the report stands
            return (
                '<p class="warn">The knowledge space could not be shown: the run saved no '
                "knowledge_sample.safetensors"
                + (f" (unreadable: {escape(unreadable)})" if unreadable else "")
                + " and recomputing it from the run directory failed: "
                + f"{escape(type(exc).__name__)}: {escape(first_line(exc))}</p>"
            )
    return knowledge_view(run, sample)


def knowledge_view(run: RunFiles, sample: Any) -> str:
    """The section's note, its two PCA panels and its per-domain table for ``sample``."""
    names = [n for n, d in sample.domains.items() if d.knowledge is not None]
    if not names:
        return '<p class="warn">The teacher gave knowledge vectors for none of the domains.</p>'
    knowledge = torch.cat([sample.domains[n].knowledge for n in names])
    mean, components, shares = pca_2d(knowledge)
    student, how, student_title = _student_in_knowledge_space(sample, names, knowledge)
    plot = _panels(sample, names, student, student_title, mean, components, shares)
    table = _agreement_table(run, sample, student)
    source = (
        "saved by the run at the end of round "
        f"{escape(sample.meta.get('round'))} (knowledge_sample.safetensors): the vectors the "
        "student was distilled towards"
        if sample.meta.get("source") == "run"
        else "recomputed from the run directory (the run saved no sample): the final "
        "teacher's features on the train split through the last round's encoder"
    )
    dim = int(knowledge.shape[1])
    return (
        f'<p class="note">Up to {max(len(d.labels) for d in sample.domains.values())} '
        f"train examples per domain, {source}. Left: the teacher's {dim}-dimensional "
        "knowledge vectors; right: the student's features, projected into the same space "
        f"by {how}. Both panels use the principal axes of the teacher's vectors. Colour: "
        "domain; marker: class index (the table names them). R² (the share of each "
        "domain's knowledge-vector variance the student's projection explains) and cosine "
        "compare the two per example.</p>" + img(plot, "knowledge space") + table
    )


def _student_in_knowledge_space(
    sample: Any, names: list[str], knowledge: torch.Tensor
) -> tuple[dict[str, torch.Tensor], str, str]:
    """Each domain's student features in the knowledge space (through the loss's trained
    projector where the sample has it, else by a cross-fitted least-squares map), how they
    got there (for the note) and the right panel's title."""
    if all(d.projected is not None for d in sample.domains.values()):
        student = {n: d.projected.double() for n, d in sample.domains.items()}
        how = (
            f"the projector of the <code>{escape(sample.meta.get('projector'))}</code> loss, "
            "trained with the student"
        )
        return student, how, "student: features through its trained projector"
    with_knowledge = torch.cat([sample.domains[n].student_features for n in names])
    fitted = cross_fitted(with_knowledge, knowledge).split(
        [len(sample.domains[n].labels) for n in names]
    )
    fit_all = least_squares_map(with_knowledge, knowledge)
    student = {
        n: _affine(d.student_features, fit_all) for n, d in sample.domains.items()
    }  # domains without knowledge vectors: mapped by the fit on every row
    student.update(dict(zip(names, fitted, strict=True)))
    why = (
        "the run's losses have no projector"
        if sample.meta.get("source") == "run"
        else "loss projectors are not saved with a run"
    )
    how = (
        "a least-squares linear map from the student's features to the knowledge "
        f"vectors ({why}), cross-fitted on this sample: each half of the examples is "
        "mapped by the fit on the other half, so R² and cosine are out-of-sample"
    )
    return student, how, "student: features mapped linearly onto the knowledge space"


def _panels(
    sample: Any,
    names: list[str],
    student: dict[str, torch.Tensor],
    student_title: str,
    mean: torch.Tensor,
    components: torch.Tensor,
    shares: list[float],
) -> str:
    """The two scatter panels (teacher, student) on the teacher's principal axes."""
    from cdkd_core.artifacts import plots as report_plots

    def to_2d(x: torch.Tensor) -> Any:
        return ((x.double() - mean) @ components).numpy()

    teacher_groups = [
        report_plots.ScatterGroup(n, to_2d(sample.domains[n].knowledge), _labels(sample, n))
        for n in names
    ]
    student_groups = [
        report_plots.ScatterGroup(n, to_2d(student[n]), _labels(sample, n)) for n in sample.domains
    ]
    return report_plots.knowledge_space(
        teacher_groups,
        student_groups,
        list(sample.domains),
        student_title,
        (f"PC1 ({shares[0]:.0%} of variance)", f"PC2 ({shares[1]:.0%} of variance)"),
    )


def _agreement_table(run: RunFiles, sample: Any, student: dict[str, torch.Tensor]) -> str:
    """Per domain: its examples, whether the teacher gave knowledge vectors, R² and cosine
    of the student's projection against them, and its class names."""
    import numpy as np

    classes = (run.layout.get("domains") or {}) if isinstance(run.layout, dict) else {}
    rows = []
    for n, d in sample.domains.items():
        names_of = (classes.get(n) or {}).get("classes") or []
        present = sorted({int(k) for k in np.asarray(d.labels)})
        legend = ", ".join(
            f"{k}: {names_of[k]}" if k < len(names_of) else str(k) for k in present[:8]
        ) + (" …" if len(present) > 8 else "")
        if d.knowledge is None:
            r2 = cos = None
        else:
            r2, cos = _r2(student[n], d.knowledge), _cosine(student[n], d.knowledge)
        rows.append(
            [
                td(n, True),
                td(len(d.labels)),
                td("yes" if d.knowledge is not None else "no (no teacher stem)", True),
                td(r2),
                td(cos),
                td(legend, True),
            ]
        )
    return html_table(
        ["domain", "examples", "teacher knowledge", "R² student→teacher", "cosine", "classes"],
        rows,
        left=(0, 2, 5),
    )


def _labels(sample: Any, name: str) -> Any:
    return sample.domains[name].labels.long().numpy()
