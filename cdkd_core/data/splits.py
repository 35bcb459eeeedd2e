"""Helpers domain authors use to cut train / val / test splits and label subsets."""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from cdkd_core.components.base import ComponentConfig


def stratified_split_indices(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Disjoint, stratified train / val / test indices (sorted), deterministic in ``seed``.

    Every class with enough examples appears in each split; the proportions follow
    ``val_fraction`` and ``test_fraction`` per class (rounded, at least one example in val
    and test for classes with three or more examples).

    Args:
        labels: ``[N]`` class labels (any values numpy can compare).
        val_fraction: Fraction of each class for val.
        test_fraction: Fraction of each class for test.
        seed: The split's seed (a domain's ``split_seed``, so it never moves between runs).

    Returns:
        ``{"train": ..., "val": ..., "test": ...}``: sorted int index arrays into
        ``labels``, disjoint and together every index.

    Examples:
        >>> import numpy as np
        >>> from cdkd_core.plugin_api import stratified_split_indices
        >>> labels = np.array([0] * 6 + [1] * 4)
        >>> index = stratified_split_indices(labels, 0.2, 0.2, seed=0)
        >>> {split: labels[i].tolist() for split, i in index.items()}
        {'train': [0, 0, 0, 0, 1, 1], 'val': [0, 1], 'test': [0, 1]}
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        n = len(idx)
        n_test = round(n * test_fraction)
        n_val = round(n * val_fraction)
        if n >= 3:
            n_test = max(n_test, 1 if test_fraction > 0 else 0)
            n_val = max(n_val, 1 if val_fraction > 0 else 0)
        n_test = min(n_test, max(n - 1, 0))
        n_val = min(n_val, max(n - 1 - n_test, 0))
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])
    return {k: np.sort(np.concatenate(v)) if v else np.array([], int) for k, v in parts.items()}


def stratified_subset_mask(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """A boolean mask over ``labels`` keeping ``fraction`` of each class (at least one per class
    when ``fraction > 0``; none when it is 0), deterministic in ``seed``.

    Args:
        labels: ``[N]`` class indices.
        fraction: Fraction of each class to keep, in ``[0, 1]``.
        seed: The draw's seed.

    Returns:
        ``[N]`` bool tensor.

    Examples:
        >>> import torch
        >>> from cdkd_core.plugin_api import stratified_subset_mask
        >>> labels = torch.tensor([0] * 6 + [1] * 4)
        >>> mask = stratified_subset_mask(labels, 0.5, seed=0)
        >>> torch.bincount(labels[mask]).tolist()
        [3, 2]
    """
    mask = torch.zeros(len(labels), dtype=torch.bool)
    if fraction <= 0:
        return mask
    if fraction >= 1:
        return ~mask
    generator = torch.Generator().manual_seed(seed)
    for cls in torch.unique(labels):
        idx = torch.nonzero(labels == cls).flatten()
        keep = max(1, round(len(idx) * fraction))
        chosen = idx[torch.randperm(len(idx), generator=generator)[:keep]]
        mask[chosen] = True
    return mask


def shots_mask(labels: torch.Tensor, shots: int, seed: int) -> tuple[torch.Tensor, dict[int, int]]:
    """A boolean mask over ``labels`` keeping ``shots`` examples of each class (few-shot;
    every example of a class with fewer), deterministic in ``seed``.

    Returns the mask and ``{class: available}`` for the classes with fewer than ``shots``.
    """
    if shots < 1:
        raise ValueError(f"shots must be at least 1, got {shots}")
    mask = torch.zeros(len(labels), dtype=torch.bool)
    short: dict[int, int] = {}
    generator = torch.Generator().manual_seed(seed)
    for cls in torch.unique(labels):
        idx = torch.nonzero(labels == cls).flatten()
        if len(idx) < shots:
            short[int(cls)] = len(idx)
        chosen = idx[torch.randperm(len(idx), generator=generator)[:shots]]
        mask[chosen] = True
    return mask, short


def cap_examples(labels: np.ndarray, max_examples: int | None, seed: int) -> np.ndarray:
    """Indices of at most ``max_examples`` examples, stratified (per-class counts by largest
    remainder, at least one per class while the cap allows), in their original order.

    Args:
        labels: ``[N]`` class labels.
        max_examples: The cap (``None``: keep every example).
        seed: The draw's seed.

    Returns:
        Sorted int indices into ``labels`` (every index when the cap is ``None`` or not
        below ``N``).

    Raises:
        ValueError: ``max_examples`` is below the number of classes.

    Examples:
        >>> import numpy as np
        >>> from cdkd_core.plugin_api import cap_examples
        >>> labels = np.array([0] * 6 + [1] * 4)
        >>> keep = cap_examples(labels, 5, seed=0)
        >>> len(keep), np.bincount(labels[keep]).tolist()
        (5, [3, 2])
    """
    labels = np.asarray(labels)
    if max_examples is None or max_examples >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    if max_examples < len(classes):
        raise ValueError(
            f"max_examples={max_examples} is below the number of classes ({len(classes)})"
        )
    quota = counts * max_examples / len(labels)
    take = np.floor(quota).astype(int)
    for j in np.argsort(-(quota - take), kind="stable")[: max_examples - take.sum()]:
        take[j] += 1
    short = np.flatnonzero(take == 0)
    for j in short:  # give empty classes one example, taken from the largest quotas
        donor = int(np.argmax(take))
        if take[donor] > 1:
            take[donor] -= 1
            take[j] = 1
    keep = [
        rng.choice(np.flatnonzero(labels == c), size=int(n), replace=False)
        for c, n in zip(classes, take, strict=True)
        if n > 0
    ]
    return np.sort(np.concatenate(keep))


class SplitConfig(ComponentConfig):
    """Split sizes and caps shared by the built-in domains.

    A domain's ``Config`` extends it to take the same params as the built-ins; ``load``
    passes them to :func:`cap_examples` and :func:`stratified_split_indices`.

    Attributes:
        val_fraction: Fraction held out for val (0 < f < 0.5, default 0.2).
        test_fraction: Fraction held out for test (0 < f < 0.5, default 0.2).
        split_seed: Seed of the split, fixed across the run's seeds (default 0).
        max_examples: Stratified cap on examples before splitting (at least 10; default
            ``None``, no cap).

    Examples:
        >>> from pydantic import Field
        >>> from cdkd_core.plugin_api import SplitConfig
        >>> class Config(SplitConfig):
        ...     path: str = Field(description="The CSV to read.")
        >>> config = Config(path="table.csv", test_fraction=0.3)
        >>> config.val_fraction, config.test_fraction, config.max_examples
        (0.2, 0.3, None)
    """

    val_fraction: float = Field(0.2, gt=0, lt=0.5, description="Fraction held out for val.")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="Fraction held out for test.")
    split_seed: int = Field(0, ge=0, description="Seed of the split (fixed across run seeds).")
    max_examples: int | None = Field(
        None, ge=10, description="Stratified cap on examples (before splitting)."
    )
