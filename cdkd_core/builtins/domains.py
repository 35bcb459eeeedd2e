"""Built-in domains: real datasets bundled with scikit-learn, ``tabular`` for a CSV and
``arrays`` for ``.npy`` files (memory-mapped, :mod:`cdkd_core.builtins.arrays`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from cdkd_core.builtins.arrays import ArraysDomain
from cdkd_core.components.domain import Domain, DomainData, Split
from cdkd_core.components.raw_input import InputReader
from cdkd_core.data.labels import CLASSES_HELP, ClassList
from cdkd_core.data.path_id import path_digest
from cdkd_core.data.splits import SplitConfig, cap_examples, stratified_split_indices
from cdkd_core.data.tabular import NA_VALUES, Delimiter, Table, TabularEncoder
from cdkd_core.errors import DataError
from cdkd_core.host.hookspecs import Register, hookimpl


def _make_splits(x: np.ndarray, y: np.ndarray, config: SplitConfig) -> dict[str, Split]:
    keep = cap_examples(y, config.max_examples, config.split_seed)
    x, y = x[keep], y[keep]
    index = stratified_split_indices(
        y, config.val_fraction, config.test_fraction, config.split_seed
    )
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    return {name: Split.single_view(xt[idx], yt[idx]) for name, idx in index.items()}


class _SklearnDomain(Domain):
    loader = ""
    modality = "tabular"
    metrics: tuple[str, ...] = ("accuracy", "f1_macro")
    Config = SplitConfig

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, self.loader)()
        return bunch.data, bunch.target, [str(c) for c in bunch.target_names]

    def input_reader(self, seed: int) -> InputReader:
        """New rows as a CSV with the dataset's feature columns (scikit-learn's
        ``feature_names``), every cell a number."""
        import sklearn.datasets

        from cdkd_core.data.raw_input import TableReader, numeric_columns

        columns = [str(c) for c in getattr(sklearn.datasets, self.loader)().feature_names]
        shape = self._arrays()[0].shape[1:]
        return TableReader(columns, lambda table: numeric_columns(table, columns, shape))

    def load(self, seed: int) -> DomainData:
        """Stratified splits of the bundled dataset (the split is fixed by ``split_seed``)."""
        x, y, classes = self._arrays()
        return DomainData(
            modality=self.modality,
            task=self.name,
            classes=classes,
            splits=_make_splits(x, y, self.config),
            metrics=list(self.metrics),
            feature_names=self._feature_names(),
        )

    def _feature_names(self) -> list[str] | None:
        """scikit-learn's ``feature_names`` of a table (None for images)."""
        if self.modality != "tabular":
            return None
        import sklearn.datasets

        return [str(c) for c in getattr(sklearn.datasets, self.loader)().feature_names]


class BreastCancer(_SklearnDomain):
    """Breast cancer (Wisconsin diagnostic): 569 FNA images as 30 features, malignant/benign."""

    name = "sklearn.breast_cancer"
    loader = "load_breast_cancer"
    metrics = ("roc_auc", "accuracy")


class Wine(_SklearnDomain):
    """Wine recognition: 178 wines, 13 chemical measurements, 3 cultivars."""

    name = "sklearn.wine"
    loader = "load_wine"


class Iris(_SklearnDomain):
    """Iris: 150 flowers, 4 measurements, 3 species."""

    name = "sklearn.iris"
    loader = "load_iris"


class Digits(_SklearnDomain):
    """Handwritten digits: 1797 8x8 grey images (UCI optdigits test set), 10 classes."""

    name = "sklearn.digits"
    loader = "load_digits"
    modality = "image"

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        x, y, classes = super()._arrays()
        return x.reshape(-1, 1, 8, 8), y, classes


class TabularConfig(SplitConfig):
    """Where the CSV is, which column holds the label, and how cells are read."""

    path: Path = Field(description="CSV file with a header row.")
    label: str = Field(description="Name of the label column.")
    features: list[str] | None = Field(None, description="Feature columns (default: all others).")
    delimiter: Delimiter = Field(
        None, description="Field delimiter, one character (default: sniffed)."
    )
    decimal: Literal[".", ","] = Field(
        ".",
        description='Decimal mark of the numbers: "." or "," (1,5; "." or a space may then '
        "group thousands: 1.234,5). A column of numbers with the other mark is an error.",
    )
    classes: ClassList = Field(None, description=CLASSES_HELP)
    na_values: list[str] = Field(
        default_factory=lambda: list(NA_VALUES),
        description="Cells read as missing (stripped, ignoring case).",
    )
    numeric: list[str] = Field(
        default_factory=list, description="Columns declared numeric (default: by the type rule)."
    )
    categorical: list[str] = Field(
        default_factory=list,
        description="Columns declared categorical (default: by the type rule).",
    )
    task: str | None = Field(None, description="Task id; domains with one task share a head.")
    input_space: str | None = Field(
        None,
        description="Domains with the same input space share a stem: they need the same "
        "feature columns and categories (checked).",
    )
    metrics: list[str] = Field(default_factory=lambda: ["accuracy", "f1_macro"], min_length=1)

    @model_validator(mode="after")
    def _label_not_feature(self) -> TabularConfig:
        if self.features is not None and self.label in self.features:
            raise ValueError(f"label column {self.label!r} is also listed in features")
        both = sorted(set(self.numeric) & set(self.categorical))
        if both:
            raise ValueError(f"column(s) {both} declared both numeric and categorical")
        declared = [*self.numeric, *self.categorical]
        if self.label in declared:
            raise ValueError(f"label column {self.label!r} is declared numeric or categorical")
        if self.features is not None:
            unknown = [c for c in declared if c not in self.features]
            if unknown:
                raise ValueError(f"declared column(s) {unknown} are not among features")
        return self


class TabularCSV(Domain):
    """Your own table: a CSV with a label column; categories one-hot, missing values imputed.

    Column types are decided on the whole file by one rule (see
    :mod:`cdkd_core.data.tabular`); imputation and categories are fitted on the train
    split only. Labels follow :mod:`cdkd_core.data.labels`; without ``classes``, the classes are
    the label values of the train split, and a val/test label unseen in train is an error.
    Every bad cell and label of the file is reported in one error (up to 20, then a count).
    """

    name = "tabular"
    Config = TabularConfig

    def load(self, seed: int) -> DomainData:
        """Read, split (stratified by label) and encode the CSV."""
        cfg: TabularConfig = self.config  # type: ignore[assignment]
        table, encoder, index, codes, names = self._fitted()
        x = torch.as_tensor(encoder.transform(table))
        y = torch.as_tensor(codes, dtype=torch.long)
        # two different files with one name must not share a stem or head by accident
        digest = path_digest(cfg.path)
        default_id = f"tabular.{Path(cfg.path).stem}.{digest}"
        return DomainData(
            modality="tabular",
            task=cfg.task or f"{default_id}.{cfg.label}",
            classes=list(names),
            splits={k: Split.single_view(x[v], y[v]) for k, v in index.items()},
            metrics=list(cfg.metrics),
            input_space=cfg.input_space or default_id,
            feature_names=encoder.feature_names,
        )

    def input_reader(self, seed: int) -> InputReader:
        """New rows with the CSV's feature columns, encoded with the types, medians and
        categories :meth:`load` fitted on the train split (the training CSV is read again to
        refit them)."""
        from cdkd_core.data.raw_input import TableReader

        cfg: TabularConfig = self.config  # type: ignore[assignment]
        _, encoder, _, _, _ = self._fitted()
        return TableReader(encoder.columns, encoder.encode, delimiter=cfg.delimiter)

    def _fitted(self) -> tuple[Table, TabularEncoder, dict[str, np.ndarray], np.ndarray, list[str]]:
        """The CSV, its encoder fitted on the train split, the split indices, the label
        codes and the class names."""
        from cdkd_core.data.labels import encode_labels
        from cdkd_core.data.problems import Problems
        from cdkd_core.data.tabular import read_csv

        cfg: TabularConfig = self.config  # type: ignore[assignment]
        table = read_csv(cfg.path, cfg.delimiter)
        if cfg.label not in table.header:
            raise DataError(
                f"{table.path}: no label column {cfg.label!r}; columns are {table.header}"
            )
        columns = cfg.features or [c for c in table.header if c != cfg.label]
        table.require(columns, "feature column")
        table.require([*cfg.numeric, *cfg.categorical], "declared column")
        problems = Problems(table.path)
        labels = encode_labels(
            table.column(cfg.label),
            path=table.path,
            column=cfg.label,
            lines=table.lines,
            classes=cfg.classes,
            missing=cfg.na_values,
            problems=problems,
        )
        encoder = TabularEncoder(
            columns, cfg.na_values, cfg.numeric, cfg.categorical, decimal=cfg.decimal
        )
        encoder.decide_types(table, problems)
        problems.raise_if_any()
        names, codes = labels.classes, labels.codes
        keep = cap_examples(codes, cfg.max_examples, cfg.split_seed)
        index = stratified_split_indices(
            codes[keep], cfg.val_fraction, cfg.test_fraction, cfg.split_seed
        )
        index = {k: keep[v] for k, v in index.items()}
        empty = [k for k, v in index.items() if len(v) == 0]
        if empty:
            sizes = {k: len(v) for k, v in index.items()}
            raise DataError(
                f"{table.path}: too few rows to fill train/val/test (sizes {sizes}; empty: "
                f"{empty}); a class needs at least 3 rows to reach every split"
            )
        train_classes = np.unique(codes[index["train"]])
        for split in ("val", "test"):
            unseen = np.setdiff1d(codes[index[split]], train_classes)
            if len(unseen):
                row = int(index[split][np.isin(codes[index[split]], unseen)][0])
                raise DataError(
                    f"{cfg.path}, line {table.lines[row]}: label {names[codes[row]]!r} appears "
                    f"in the {split} split but never in train (too few examples of that class)"
                )
        if cfg.classes is None:  # the classes are those of the train split
            remap = {int(c): j for j, c in enumerate(train_classes)}
            codes = np.asarray([remap.get(int(c), -1) for c in codes])
            names = [names[c] for c in train_classes]
        encoder.fit(table, index["train"])
        return table, encoder, index, codes, list(names)


@hookimpl
def register_domains(register: Register) -> None:
    """The core's own domains."""
    for cls in (BreastCancer, Wine, Iris, Digits, TabularCSV, ArraysDomain):
        register(cls)
