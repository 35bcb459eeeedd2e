"""``medical.breast_cancer_fna``: breast-mass fine-needle-aspirate (FNA) images as measured
nuclear features (Wisconsin Diagnostic Breast Cancer, Street, Wolberg & Mangasarian 1993).

569 digitised FNA images of breast masses; for the cell nuclei in each image ten features
(radius, texture, perimeter, area, smoothness, compactness, concavity, concave points,
symmetry, fractal dimension) are reported as mean, standard error and worst value: 30
imaging-derived tabular features. 212 malignant, 357 benign. Bundled with scikit-learn
(``load_breast_cancer``; UCI ML repository, CC BY 4.0).

Malignant is the positive class (index 1), so ``roc_auc`` is the AUC of detecting
malignancy; the classes are imbalanced (37 % malignant), so ROC-AUC is the headline metric.
"""

from __future__ import annotations

import numpy as np
import torch

from cdkd_core.plugin_api import (
    Domain,
    DomainData,
    InputReader,
    Split,
    cap_examples,
    stratified_split_indices,
)
from cdkd_medical._common import SplitFractions

CLASSES = ["benign", "malignant"]


class BreastCancerFNA(Domain):
    """Breast-cancer FNA images as 30 measured nuclear features (WDBC, 569 cases), malignant=1.

    Imaging-derived tabular data, so image and tabular medical knowledge meet in one
    pipeline; stratified splits fixed by ``split_seed``; ROC-AUC headline (37 % malignant).
    """

    name = "medical.breast_cancer_fna"
    Config = SplitFractions

    def load(self, seed: int) -> DomainData:
        """Stratified train / val / test of the 569 cases (``seed`` is not used)."""
        cfg: SplitFractions = self.config  # type: ignore[assignment]
        columns, x, y = _cases()
        keep = cap_examples(y, cfg.max_examples, cfg.split_seed)
        x, y = x[keep].astype(np.float32), y[keep]
        index = stratified_split_indices(y, cfg.val_fraction, cfg.test_fraction, cfg.split_seed)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        return DomainData(
            modality="tabular",
            task=self.name,
            classes=list(CLASSES),
            splits={k: Split.single_view(xt[v], yt[v]) for k, v in index.items()},
            metrics=["roc_auc", "accuracy"],
            feature_names=list(columns),
        )

    def input_reader(self, seed: int) -> InputReader:
        """New cases as a CSV of the 30 features, named as scikit-learn names them
        (``mean radius``, ..., ``worst fractal dimension``; a label column is ignored),
        every cell a number: the student view is those 30 numbers as float32, as in
        :meth:`load`."""
        from cdkd_core.plugin_api import TableReader, numeric_columns

        columns, _, _ = _cases()
        return TableReader(columns, lambda table: numeric_columns(table, columns))


def _cases() -> tuple[list[str], np.ndarray, np.ndarray]:
    """The feature names, the features ``[569, 30]`` (float64, as published) and the
    labels (1 = malignant) of scikit-learn's copy of the data."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    # scikit-learn codes malignant 0, benign 1; make malignancy the positive class
    names = [str(n) for n in bunch.target_names]
    y = (bunch.target == names.index("malignant")).astype(np.int64)
    return [str(c) for c in bunch.feature_names], bunch.data, y
