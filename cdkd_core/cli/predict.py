"""``cdkd predict``: a finished run's student on new raw input (a CSV, texts, images)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from cdkd_core.cli.common import make_host, stdout_to_stderr, user_errors


class Model(str, Enum):
    """The model ``cdkd predict`` runs."""

    student = "student"
    teacher = "teacher"


class OutputFormat(str, Enum):
    """What ``cdkd predict`` writes."""

    csv = "csv"
    jsonl = "jsonl"


@user_errors
def predict(
    run_dir: Annotated[
        Path,
        typer.Argument(
            help="A finished run directory, or its export/ folder.", metavar="RUN_OR_EXPORT_DIR"
        ),
    ],
    source: Annotated[
        Path,
        typer.Argument(
            help="The raw input: a CSV with the training columns (tables), a text file with "
            "one text per line, a CSV column or JSON Lines (texts), an image file or folder "
            "(images).",
            metavar="INPUT",
        ),
    ],
    domain: Annotated[
        str | None,
        typer.Option(
            "--domain",
            "-d",
            help="The run's domain the input belongs to (default: the run's only one).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write the predictions (default: standard output).",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        Model,
        typer.Option(
            "--model",
            help="student, or teacher (where the domain's plugin can compute the teacher's "
            "view from raw input).",
        ),
    ] = Model.student,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="Output format.")
    ] = OutputFormat.csv,
    column: Annotated[
        str | None,
        typer.Option(
            "--column",
            help="Texts: the CSV column or JSON key holding the text (default: text).",
            show_default=False,
        ),
    ] = None,
    id_column: Annotated[
        str | None,
        typer.Option(
            "--id-column",
            help="The CSV column or JSON key identifying a row (default: its line number; an "
            "image's path).",
            show_default=False,
        ),
    ] = None,
    delimiter: Annotated[
        str | None,
        typer.Option(
            "--delimiter", help="A CSV's delimiter (default: sniffed).", show_default=False
        ),
    ] = None,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, help="Rows read and predicted at a time.")
    ] = 1024,
) -> None:
    """Predict new raw input with a finished run's student (or teacher): each row's id,
    its predicted class (`prediction`) and one probability per class (`p_<class>`). The
    input is read as the domain's plugin read its training data (same columns, checks and
    encoding), streamed in chunks.

    Examples:

    \b
      cdkd predict runs/my-run new_loans.csv --domain my_loans -o predictions.csv
      cdkd predict runs/quickstart-20261206-101010 reviews.txt -d nlp.sentiment_nyt
      cdkd predict runs/my-run reviews.jsonl -d nlp.sentiment_amazon --column body --format jsonl
    """
    from cdkd_core.artifacts.predict import (
        PredictionWriter,
        load_student,
        load_teacher,
        predict_to_file,
    )
    from cdkd_core.components.raw_input import InputOptions
    from cdkd_core.errors import DataError

    load = load_teacher if model is Model.teacher else load_student
    predictor = load(run_dir, host=make_host())
    name = predictor.domain(domain)
    options = InputOptions(column=column, id_column=id_column, delimiter=delimiter)
    if output is None:  # standard output: the predictions alone (a plugin's prints: stderr)
        with stdout_to_stderr() as stdout:
            writer = PredictionWriter(stdout, output_format.value, predictor.classes(name))
            for predictions in predictor.batches(source, name, options, chunk_size):
                writer.write(predictions)
        if writer.rows == 0:
            raise DataError(f"{source}: no rows to predict")
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    total = predictor.reader(name).count(source, options)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as progress:
        task = progress.add_task(f"predicting {name}", total=total)
        rows = predict_to_file(
            predictor,
            source,
            name,
            output,
            output_format.value,
            options,
            chunk_size,
            on_chunk=lambda n: progress.advance(task, n),
        )
    typer.echo(f"wrote {rows:,} predictions of {name} to {output}", err=True)
