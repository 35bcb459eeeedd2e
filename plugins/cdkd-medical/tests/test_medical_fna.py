"""medical.breast_cancer_fna: the WDBC features, malignant as the positive class."""

from __future__ import annotations

import numpy as np
import torch
from cdkd_medical.fna import BreastCancerFNA


def test_fna_domain():
    data = BreastCancerFNA.from_params({}).load(seed=0)
    assert data.modality == "tabular"
    assert data.classes == ["benign", "malignant"]
    assert data.metrics == ["roc_auc", "accuracy"]
    sizes = {k: len(s) for k, s in data.splits.items()}
    assert sum(sizes.values()) == 569
    assert abs(sizes["val"] - 114) <= 1 and abs(sizes["test"] - 114) <= 1
    y = torch.cat([s.y for s in data.splits.values()])
    assert int(y.sum()) == 212  # malignant
    for split in data.splits.values():
        assert split.teacher_x.shape[1:] == (30,)
        share = float(split.y.float().mean())
        assert abs(share - 212 / 569) < 0.02  # stratified
    # malignant masses are larger: mean radius (feature 0) is higher for class 1
    x = torch.cat([s.teacher_x for s in data.splits.values()])
    assert x[y == 1, 0].mean() > x[y == 0, 0].mean() + 3
    # splits are disjoint rows
    rows = [tuple(np.round(r.numpy(), 5)) for s in data.splits.values() for r in s.teacher_x]
    assert len(set(rows)) == 569


def test_fna_cap_and_seed():
    data = BreastCancerFNA.from_params({"max_examples": 100, "split_seed": 3}).load(seed=0)
    assert sum(len(s) for s in data.splits.values()) == 100
    again = BreastCancerFNA.from_params({"max_examples": 100, "split_seed": 3}).load(seed=9)
    assert torch.equal(data.splits["test"].teacher_x, again.splits["test"].teacher_x)
