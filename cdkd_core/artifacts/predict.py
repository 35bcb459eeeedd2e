"""Predictions from raw input with a finished run's student or teacher (``cdkd predict``,
:func:`load_student`, :func:`load_teacher`): each domain's plugin reads the input into its
views as it did for training (:meth:`~cdkd_core.components.domain.Domain.input_reader`),
the run's student -- its standardisation and decision-rule offset built in -- or its
teacher -- standardisation, the head adapted to a target and the target's class prior as
the run used them -- turns a view into class probabilities, and the rows stream through in
chunks."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import torch

from cdkd_core.artifacts.run_files import first_line
from cdkd_core.artifacts.run_student import RunStudent, input_dtype, load_run_student
from cdkd_core.components.raw_input import InputBatch, InputOptions, InputReader
from cdkd_core.errors import CdkdError, DataError, ExportError

if TYPE_CHECKING:
    from cdkd_core.host.plugin_host import PluginHost

#: the models ``cdkd predict --model`` runs
MODELS = ("student", "teacher")
#: what ``--format`` accepts
OUTPUT_FORMATS = ("csv", "jsonl")
#: rows read, encoded and predicted at a time
CHUNK_SIZE = 1024


@dataclass
class Predictions:
    """A model's predictions on some rows of one domain: each row's id, and its class
    probabilities ``[N, C]`` in the order of ``classes``."""

    domain: str
    classes: list[str]
    ids: list[str]
    probabilities: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def labels(self) -> list[str]:
        """The predicted class of each row (the most probable)."""
        return [self.classes[int(i)] for i in self.probabilities.argmax(axis=1)]

    def records(self) -> Iterator[dict[str, Any]]:
        """One ``{"id", "prediction", "p_<class>", ...}`` dict per row."""
        for row_id, label, p in zip(self.ids, self.labels, self.probabilities, strict=True):
            yield {
                "id": row_id,
                "prediction": label,
                **{f"p_{c}": float(v) for c, v in zip(self.classes, p, strict=True)},
            }

    @staticmethod
    def concat(parts: Sequence[Predictions]) -> Predictions:
        """The rows of ``parts`` (one domain's) as one :class:`Predictions`."""
        first = parts[0]
        return Predictions(
            first.domain,
            first.classes,
            [i for p in parts for i in p.ids],
            np.concatenate([p.probabilities for p in parts]),
        )


class TeacherPath:
    """A finished run's teacher on raw teacher views: the run's standardisation of each
    domain's teacher view, the teacher's own head, or the head adapted to a target
    (``target_heads.safetensors``), and a target's class prior as ``summary.json`` records
    it (``label_shift``), as the run's own teacher results were computed."""

    def __init__(self, student: RunStudent, host: PluginHost) -> None:
        from cdkd_core.artifacts.run_teacher import load_run_teacher
        from cdkd_core.files import read_run_file
        from cdkd_core.nets.target_heads import TargetHeads

        run_dir = student.run_dir
        self.layout = student.layout
        self.preprocessing = student.preprocessing
        self.feature_layer = student.config.teacher.feature_layer
        try:
            self.net = load_run_teacher(run_dir, host)
        except CdkdError:
            raise
        except Exception as exc:  # a teacher file missing, or unlike the config's teacher
            raise ExportError(
                f"{run_dir / 'teacher.safetensors'}: cannot rebuild the run's teacher "
                f"({first_line(exc)})"
            ) from exc
        self.heads = TargetHeads()
        if (run_dir / "target_heads.safetensors").is_file():
            self.heads.load_state_dict(read_run_file(run_dir / "target_heads.safetensors"))
        summary = read_run_file(run_dir / "summary.json")
        self.priors = {
            name: d["label_shift"]
            for name, d in summary["domains"].items()
            if isinstance(d.get("label_shift"), dict) and "prior" in d["label_shift"]
        }

    def predicts(self, domain: str) -> bool:
        """Whether the teacher predicts ``domain`` (a head of its own, or an adapted one)."""
        info = self.layout["domains"][domain]
        has_stem = getattr(self.net, "has_stem", lambda space: False)(info["space"])
        own = has_stem and self.net.has_head(info["task"])
        return own or (domain in self.heads and has_stem)

    @torch.no_grad()
    def logits(self, domain: str, x: torch.Tensor) -> torch.Tensor:
        """The teacher's logits on a batch of ``domain``'s raw teacher views."""
        from cdkd_core.engine.label_shift import shift_logits
        from cdkd_core.nets.reading import read_layer

        info = self.layout["domains"][domain]
        if info["standardized"]["teacher_x"]:
            mean, std = (self.preprocessing[f"{domain}/teacher_x/{k}"] for k in ("mean", "std"))
            x = ((x.double() - mean.double()) / std.double()).float()  # as training did
        space, task = info["space"], info["task"]
        own = self.net.has_head(task)
        if domain in self.heads:
            features, base = read_layer(
                self.net, self.feature_layer, x, space, task if own else None
            )
            logits = self.heads.logits(domain, features, x, base)
        else:
            self.net.eval()
            logits = self.net(x, space, task).float()
        shift = self.priors.get(domain)
        if shift is not None:
            logits = shift_logits(logits, shift["reference_prior"], shift["prior"])
        return logits


class RunPredictor:
    """A finished run's student (or teacher) with each of its domains' raw-input readers:
    raw input in, class probabilities out (:func:`load_student` and :func:`load_teacher`
    make one)."""

    def __init__(self, student: RunStudent, host: PluginHost, model: str = "student") -> None:
        if model not in MODELS:
            raise DataError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
        self.student = student
        self.host = host
        self.model = model
        self.teacher = TeacherPath(student, host) if model == "teacher" else None
        self._readers: dict[str, InputReader] = {}
        self._modules: dict[str, torch.nn.Module] = {}

    @property
    def run_dir(self) -> Path:
        """The run directory the student was loaded from."""
        return self.student.run_dir

    @property
    def domains(self) -> list[str]:
        """The domains the model predicts (their names as in ``summary.json``)."""
        predicts = self.student.predicts if self.teacher is None else self.teacher.predicts
        return [d for d in self.student.layout["domains"] if predicts(d)]

    def classes(self, domain: str) -> list[str]:
        """``domain``'s classes, in the order of the probabilities."""
        return list(self.student.layout["domains"][self.domain(domain)]["classes"])

    def domain(self, name: str | None) -> str:
        """The domain ``name`` names (``None``: the run's only domain), checked."""
        names = list(self.student.layout["domains"])
        if name is None:
            if len(self.domains) == 1:
                return self.domains[0]
            raise DataError(
                f"{self.run_dir}: the run has {len(self.domains)} domains the {self.model} "
                f"predicts; name one with --domain: {', '.join(self.domains)}"
            )
        if name not in names:
            raise DataError(
                f"{self.run_dir}: no domain {name!r} in the run; its domains are {', '.join(names)}"
            )
        if name not in self.domains:
            raise DataError(
                f"{self.run_dir}: the {self.model} has no stem or head for domain {name!r}, "
                f"so it cannot predict it; it predicts {', '.join(self.domains) or 'no domain'}"
            )
        return name

    def reader(self, domain: str) -> InputReader:
        """``domain``'s raw-input reader, from its plugin (built once)."""
        domain = self.domain(domain)
        if domain not in self._readers:
            self._readers[domain] = _domain_reader(self.student, domain, self.host)
        return self._readers[domain]

    def _module(self, domain: str) -> torch.nn.Module:
        if domain not in self._modules:
            self._modules[domain] = self.student.domain_module(domain)
        return self._modules[domain]

    @torch.no_grad()
    def probabilities(self, domain: str, batch: InputBatch) -> np.ndarray:
        """Class probabilities ``[N, C]`` of one batch of ``domain``'s views."""
        if self.teacher is not None:
            if batch.teacher_x is None:
                raise DataError(
                    f"domain {domain!r}: its plugin cannot compute the teacher's view from raw "
                    "input here; predict with the student"
                )
            logits = self.teacher.logits(domain, batch.teacher_x)
            return torch.softmax(logits.double(), dim=1).float().numpy()
        info = self.student.layout["domains"][domain]
        x = batch.student_x
        expected = list(info["student_input_shape"])
        if list(x.shape[1:]) != expected and not (
            len(expected) == 1 and x.dim() == 2 and not x.is_floating_point()
        ):
            raise DataError(
                f"domain {domain!r}: its reader gave inputs of shape {list(x.shape[1:])}, the "
                f"student was trained on {expected}"
            )
        x = x.to(input_dtype(info["student_input_dtype"]))
        logits = self._module(domain)(x)
        return torch.softmax(logits.float(), dim=1).numpy()

    def batches(
        self,
        source: Path | str,
        domain: str | None = None,
        options: InputOptions | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> Iterator[Predictions]:
        """Predictions on the rows of the file or folder ``source``, chunk by chunk."""
        domain = self.domain(domain)
        options = replace(options or InputOptions(), teacher=self.teacher is not None)
        classes = self.classes(domain)
        for batch in self.reader(domain).batches(Path(source), options, chunk_size):
            if len(batch.ids):
                yield Predictions(domain, classes, batch.ids, self.probabilities(domain, batch))

    def predict(
        self,
        data: Path | str | Sequence[str],
        domain: str | None = None,
        *,
        column: str | None = None,
        id_column: str | None = None,
        delimiter: str | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> Predictions:
        """Predictions on ``data``: a path (a CSV, a text or JSON Lines file, an image or a
        folder of images, as the domain reads) or, for a text domain, a list of texts.

        Example:
            >>> student = load_student("runs/quickstart-20260101-120000")  # doctest: +SKIP
            >>> student.predict(["a gem of a film"], domain="nlp.sentiment_movies").labels
            ['positive']
        """
        domain = self.domain(domain)
        options = InputOptions(
            column=column,
            id_column=id_column,
            delimiter=delimiter,
            teacher=self.teacher is not None,
        )
        if not isinstance(data, str | os.PathLike):
            batch = self.reader(domain).texts(list(data), options)
            return Predictions(
                domain, self.classes(domain), batch.ids, self.probabilities(domain, batch)
            )
        parts = list(self.batches(data, domain, options, chunk_size))
        if not parts:
            raise DataError(f"{data}: no rows to predict")
        return Predictions.concat(parts)


def _domain_reader(student: RunStudent, domain: str, host: PluginHost) -> InputReader:
    """The reader of the configured domain ``domain`` (built from the run's config)."""
    config = student.config
    index, entry = next((i, e) for i, e in enumerate(config.domains) if e.key == domain)
    cls = host.get("domains", entry.name, where=f"domains.{index}.name")
    instance = cls.from_params(entry.params)
    try:
        return instance.input_reader(config.seed)
    except NotImplementedError:
        provider = host.provider("domains", cls)
        by = f" (plugin {provider.plugin!r})" if provider is not None else ""
        raise DataError(
            f"domain {domain!r}{by} does not read raw input: its plugin gives no "
            "input_reader; export the student (cdkd export) and feed it its views instead"
        ) from None
    except CdkdError:
        raise
    except (ValueError, OSError) as exc:
        raise DataError(
            f"domain {domain!r}: cannot build its input reader: {first_line(exc)}"
        ) from exc


def load_student(run_dir: Path | str, host: PluginHost | None = None) -> RunPredictor:
    """The student of the finished run in ``run_dir`` (or of the run whose ``export/``
    folder ``run_dir`` is), ready to predict from raw input; the run's plugins must be
    installed (their domains read the input).

    Args:
        run_dir: a finished run directory, or its ``export/`` folder.
        host: the plugin host; by default one over the built-ins and the installed
            plugins.

    Returns:
        A :class:`RunPredictor`; its ``predict(data, domain=...)`` gives :class:`Predictions`.

    Raises:
        ExportError: ``run_dir`` is not a finished run directory.

    Examples:
        >>> from cdkd_core import load_student  # doctest: +SKIP
        >>> student = load_student("runs/my-run")  # doctest: +SKIP
        >>> predictions = student.predict("new_rows.csv", domain="my_loans")  # doctest: +SKIP
        >>> predictions.labels[:3], predictions.probabilities.shape  # doctest: +SKIP
    """
    return _load(run_dir, host if host is not None else _default_host(), "student")


def load_teacher(run_dir: Path | str, host: PluginHost | None = None) -> RunPredictor:
    """The teacher of the finished run in ``run_dir``, ready to predict from raw input where
    its domains' plugins can compute the teacher's views (e.g. MiniLM embeddings of texts);
    as :func:`load_student` otherwise.

    Args:
        run_dir: a finished run directory, or its ``export/`` folder.
        host: the plugin host; by default one over the built-ins and the installed
            plugins.

    Returns:
        A :class:`RunPredictor` over the teacher.

    Raises:
        ExportError: ``run_dir`` is not a finished run directory.

    Examples:
        >>> from cdkd_core import load_teacher  # doctest: +SKIP
        >>> teacher = load_teacher("runs/my-run")  # doctest: +SKIP
        >>> teacher.predict("new_rows.csv", domain="my_loans").labels  # doctest: +SKIP
    """
    return _load(run_dir, host if host is not None else _default_host(), "teacher")


def _default_host() -> PluginHost:
    """The host :func:`load_student` and :func:`load_teacher` build when given none: the
    built-ins and the installed plugins."""
    from cdkd_core.host.plugin_host import PluginHost

    return PluginHost()


def _load(run_dir: Path | str, host: PluginHost, model: str) -> RunPredictor:
    run_dir = resolve_run_dir(Path(run_dir))
    return RunPredictor(load_run_student(run_dir, host), host, model)


def resolve_run_dir(path: Path) -> Path:
    """The run directory ``path`` names: itself, or the run holding it as its ``export/``."""
    if (path / "manifest.json").is_file() and not (path / "summary.json").is_file():
        if (path.parent / "summary.json").is_file():
            return path.parent
        raise ExportError(
            f"{path}: an export folder outside its run directory; cdkd predict needs the run "
            "directory (its config.yaml names the domains' readers): give the run directory"
        )
    return path


class PredictionWriter:
    """Predictions written as CSV or JSON Lines to a text stream, one chunk at a time; the
    CSV header goes out with the first chunk, so input that fails on its first chunk
    leaves the stream untouched."""

    def __init__(self, stream: TextIO, output_format: str, classes: list[str]) -> None:
        if output_format not in OUTPUT_FORMATS:
            raise DataError(
                f"unknown output format {output_format!r}; choose from {OUTPUT_FORMATS}"
            )
        self.stream = stream
        self.format = output_format
        self.classes = list(classes)
        self.rows = 0
        self._csv: Any = csv.writer(stream, lineterminator="\n") if output_format == "csv" else None

    def write(self, predictions: Predictions) -> None:
        """Append ``predictions``' rows."""
        if self._csv is not None and self.rows == 0:
            self._csv.writerow(["id", "prediction", *(f"p_{c}" for c in self.classes)])
        for record in predictions.records():
            if self._csv is not None:
                values = list(record.values())
                self._csv.writerow([*values[:2], *(f"{v:.6g}" for v in values[2:])])
            else:
                self.stream.write(json.dumps(record) + "\n")
        self.rows += len(predictions)


def predict_to_file(
    predictor: RunPredictor,
    source: Path,
    domain: str | None,
    output: Path,
    output_format: str = "csv",
    options: InputOptions | None = None,
    chunk_size: int = CHUNK_SIZE,
    on_chunk: Any = None,
) -> int:
    """Write ``predictor``'s predictions on ``source`` to ``output``: into a temporary file
    beside it, renamed over ``output`` only once every row is written (a failure leaves no
    half-written file). ``on_chunk(rows)`` is called after each chunk. Returns the rows
    written."""
    domain = predictor.domain(domain)
    output = Path(output)
    if output.is_dir():
        raise DataError(f"{output}: is a directory; give the output file's path")
    if not output.parent.is_dir():
        raise DataError(f"{output.parent}: no such folder for the output file")
    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8", newline="") as stream:
            writer = PredictionWriter(stream, output_format, predictor.classes(domain))
            for predictions in predictor.batches(source, domain, options, chunk_size):
                writer.write(predictions)
                if on_chunk is not None:
                    on_chunk(len(predictions))
        if writer.rows == 0:
            raise DataError(f"{source}: no rows to predict")
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)
    return writer.rows


__all__ = [
    "MODELS",
    "OUTPUT_FORMATS",
    "PredictionWriter",
    "Predictions",
    "RunPredictor",
    "load_student",
    "load_teacher",
    "predict_to_file",
]
