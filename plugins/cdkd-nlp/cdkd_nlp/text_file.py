"""Your own labelled texts: a CSV/TSV file with a header row, or JSON Lines (one object per
line), read strictly; every problem is a :class:`~cdkd_core.errors.DataError` naming the
file and line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from cdkd_core.plugin_api import (
    CLASSES_HELP,
    ClassList,
    DataError,
    Domain,
    DomainData,
    InputReader,
    cap_examples,
    encode_labels,
    path_digest,
)
from cdkd_nlp.textdata import (
    TEXT_SPACE,
    TextSplitConfig,
    build_domain_data,
    clean_text,
    dedupe,
    text_input_reader,
)

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
#: The longest CSV field read, in characters (the ``csv`` module's default is 131,072; a
#: long text in one cell is read as it is from JSON Lines), as the core's readers allow.
FIELD_LIMIT = 2**31 - 1


class TextFileConfig(TextSplitConfig):
    """Where the file is, which column/key holds the text and which the label."""

    path: Path = Field(description="CSV/TSV with a header row, or JSON Lines.")
    text: str = Field("text", min_length=1, description="Column or key holding the text.")
    label: str = Field("label", min_length=1, description="Column or key holding the label.")
    classes: ClassList = Field(None, description=CLASSES_HELP)
    format: Literal["auto", "csv", "tsv", "jsonl"] = Field(
        "auto", description="File format (auto: from the suffix .csv, .tsv, .jsonl, .ndjson)."
    )
    task: str | None = Field(
        None, description="Task id; domains with one task share a head (default: per file)."
    )
    input_space: str = Field(
        TEXT_SPACE,
        description="Input space; the default nlp.text shares the teacher's and student's "
        "stems with the other nlp domains.",
    )
    metrics: list[str] = Field(
        default_factory=lambda: ["accuracy", "f1_macro"],
        min_length=1,
        description="Metric names, headline first.",
    )


def _format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise DataError(
            f"{path}: cannot tell the format from the suffix {path.suffix!r}; "
            "set format: csv, tsv or jsonl"
        )
    return found


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
            "save the file as UTF-8"
        ) from None


def _read_delimited(
    path: Path, content: str, delimiter: str, text_col: str, label_col: str
) -> tuple[list[str], list[str], list[int]]:
    if csv.field_size_limit() < FIELD_LIMIT:  # the csv module's global limit, only raised
        csv.field_size_limit(FIELD_LIMIT)
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise DataError(f"{path}: the file is empty (a header row is needed)")
        header = [h.strip() for h in header]
        for role, column in (("text", text_col), ("label", label_col)):
            if column not in header:
                raise DataError(f"{path}: no {role} column {column!r}; columns are {header}")
        ti, li = header.index(text_col), header.index(label_col)
        texts, labels, lines = [], [], []
        start = reader.line_num + 1
        for row in reader:
            line, start = start, reader.line_num + 1
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path}, line {line}: {len(row)} field(s) where the header has {len(header)}"
                )
            texts.append(row[ti])
            labels.append(row[li].strip())
            lines.append(line)
    except csv.Error as exc:
        what = f"malformed CSV ({exc})"
        if "field larger than field limit" in str(exc):
            what = (
                f"a field is longer than {csv.field_size_limit():,} characters, the most a CSV "
                "field may hold (use JSON Lines for longer texts)"
            )
        raise DataError(f"{path}, line {reader.line_num}: {what}") from None
    return texts, labels, lines


def _read_jsonl(
    path: Path, content: str, text_key: str, label_key: str
) -> tuple[list[str], list[str], list[int]]:
    texts, labels, lines = [], [], []
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {number}: invalid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise DataError(
                f"{path}, line {number}: expected a JSON object, got {type(record).__name__}"
            )
        for role, key in (("text", text_key), ("label", label_key)):
            if key not in record:
                raise DataError(
                    f"{path}, line {number}: no {role} key {key!r}; keys are {sorted(record)}"
                )
        text, label = record[text_key], record[label_key]
        if not isinstance(text, str):
            raise DataError(
                f"{path}, line {number}: {text_key!r} must be a string, got {type(text).__name__}"
            )
        if label is None or isinstance(label, dict | list):
            raise DataError(
                f"{path}, line {number}: label {label_key!r} must be a string or number, "
                f"got {json.dumps(label)}"
            )
        texts.append(text)
        labels.append(label.strip() if isinstance(label, str) else json.dumps(label))
        lines.append(number)
    return texts, labels, lines


def read_text_file(
    path: Path, text: str = "text", label: str = "label", fmt: str = "auto"
) -> tuple[list[str], list[str], list[int]]:
    """Texts (cleaned), labels (as strings) and the line each record starts on."""
    path = Path(path)
    kind = _format(path, fmt)
    content = _decode(path)
    if kind == "jsonl":
        texts, labels, lines = _read_jsonl(path, content, text, label)
    else:
        delimiter = "," if kind == "csv" else "\t"
        texts, labels, lines = _read_delimited(path, content, delimiter, text, label)
    cleaned = []
    for raw, lab, line in zip(texts, labels, lines, strict=True):
        value = clean_text(raw)
        if not value:
            raise DataError(f"{path}, line {line}: empty text in {text!r}")
        if not lab:
            raise DataError(f"{path}, line {line}: empty label in {label!r}")
        cleaned.append(value)
    if not cleaned:
        raise DataError(f"{path}: no records")
    return cleaned, labels, lines


class TextFile(Domain):
    """Your own texts: a CSV/TSV (header row) or JSON Lines file with a text and a label.

    Identical texts (up to case and spacing) are merged, keeping the first one's label.
    Labels follow :mod:`cdkd_core.data.labels` (``1`` and ``1.0`` one class; ``Yes``/``yes``
    refused unless ``classes`` is given); classes are sorted unless ``classes`` fixes the
    order; each class with examples needs at least 3 (one per split).
    Teacher view: MiniLM embedding; student view: MiniLM's own WordPiece token ids
    (``max_tokens`` long, 0 = padding), or hashed word uni/bigrams with ``tokenizer: hashed``;
    input space ``nlp.text`` unless set, task per file unless set.
    """

    name = "nlp.text_file"
    Config = TextFileConfig

    def load(self, seed: int) -> DomainData:
        """Read strictly, merge duplicates, cap, split (by ``split_seed``), embed, tokenize."""
        cfg: TextFileConfig = self.config  # type: ignore[assignment]
        texts, labels, lines = read_text_file(cfg.path, cfg.text, cfg.label, cfg.format)
        pairs = list(zip(labels, lines, strict=True))
        texts, firsts, _ = dedupe(texts, pairs, lambda v: v[0])
        labels = [lab for lab, _ in firsts]
        if cfg.classes is None and len(set(labels)) < 2:
            raise DataError(f"{cfg.path}: every record has the label {labels[0]!r}; need two")
        encoded = encode_labels(
            labels,
            path=cfg.path,
            column=cfg.label,
            lines=[line for _, line in firsts],
            classes=cfg.classes,
        )
        classes, codes = encoded.classes, encoded.codes
        keep = cap_examples(codes, cfg.max_examples, cfg.split_seed)
        counts = np.bincount(codes[keep], minlength=len(classes))
        for c in np.flatnonzero((counts > 0) & (counts < 3)):
            line = next(ln for code, (_, ln) in zip(codes, firsts, strict=True) if code == c)
            raise DataError(
                f"{cfg.path}, line {line}: label {classes[c]!r} has {counts[c]} example(s) "
                "after de-duplication and max_examples; each class needs at least 3 "
                "(one each for train, val and test)"
            )
        digest = path_digest(cfg.path)
        return build_domain_data(
            [texts[i] for i in keep],
            codes[keep],
            classes,
            cfg.model_copy(update={"max_examples": None}),
            task=cfg.task or f"nlp.text_file.{Path(cfg.path).stem}.{digest}",
            metrics=list(cfg.metrics),
            input_space=cfg.input_space,
        )

    def input_reader(self, seed: int) -> InputReader:
        """New texts: a CSV/TSV or JSON Lines file like the training one (its text in the
        column or key ``text`` names, unless ``--column`` says; a label is ignored), a text
        file with one text per line, or a list from Python; cleaned and tokenized as
        :meth:`load` does, the teacher view their MiniLM embedding. The training file is
        not read: no state is fitted on it."""
        cfg: TextFileConfig = self.config  # type: ignore[assignment]
        return text_input_reader(cfg, column=cfg.text)
