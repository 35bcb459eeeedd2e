"""``cdkd``: run, validate, export, init, components, plugins."""

from __future__ import annotations

import contextlib
import json
import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from cdkd_core.cli.common import (
    debug_enabled,
    make_host,
    plain_text,
    state,
    stdout_is_terminal,
    stdout_to_stderr,
    user_errors,
)
from cdkd_core.cli.data import data_app
from cdkd_core.cli.graph import graph
from cdkd_core.cli.plugins import plugins_app
from cdkd_core.cli.predict import predict
from cdkd_core.cli.report import report

app = typer.Typer(
    name="cdkd",
    help="Cross-domain knowledge distillation: teacher -> knowledge -> student -> feedback.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    rich_markup_mode=None,
)
app.add_typer(plugins_app, name="plugins")
app.add_typer(data_app, name="data")

ConfigArg = Annotated[
    Path | None,
    typer.Argument(help="Pipeline YAML (default: the built-in quickstart).", show_default=False),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config value: KEY.PATH=VALUE (repeatable)."),
]


def _version(value: bool) -> None:
    if value:
        from cdkd_core.version import __version__

        typer.echo(f"cdkd {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Cross-domain knowledge distillation with plugins.

    Example: cdkd run --set train.epochs=5
    """
    state["debug"] = debug


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return f"{value:.4f}"


def size_line(params: dict[str, Any]) -> str:
    """The ``parameters:`` line: teacher and student, and where the teacher's count includes
    frozen encoders of its input views (e.g. MiniLM), the student against both the whole
    teacher and its trainable part."""
    teacher, student = params["teacher"], params["student"]
    frozen = params.get("teacher_view_encoders", 0)
    if not frozen:
        share = f"{student / teacher:.1%} of the teacher"
        return f"parameters: teacher {teacher:,}, student {student:,} ({share})"
    trainable = params.get("teacher_trainable", teacher - frozen)
    return (
        f"parameters: teacher {teacher:,} ({trainable:,} trainable + {frozen:,} in frozen "
        f"encoders of its input views), student {student:,} ({student / teacher:.1%} of the "
        f"whole teacher, {student / max(trainable, 1):.1%} of its trainable part)"
    )


def print_summary(summary: dict[str, Any], run_dir: Path) -> None:
    """The per-domain table of teacher, student and baseline, then sizes and timings."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="test-split results (last round)")
    references = sorted({k for d in summary["domains"].values() for k in d.get("reference", {})})
    columns = ["domain", "role", "metric", "teacher", "student", "baseline", "Δ student"]
    for column in columns + references:
        left = column in ("domain", "role", "metric")
        table.add_column(column, justify="left" if left else "right", no_wrap=True)
    for name, d in summary["domains"].items():
        delta = None
        if d["student"] is not None and d["baseline"] is not None:
            delta = d["student"] - d["baseline"]
        table.add_row(
            name,
            d["role"],
            d["metric"],
            _fmt(d["teacher"]),
            _fmt(d["student"]),
            _fmt(d["baseline"]),
            "-" if delta is None else f"{delta:+.4f}",
            *(_fmt(d.get("reference", {}).get(k)) for k in references),
        )
    console = Console(width=None if stdout_is_terminal() else 120)
    console.print(table)
    for line in summary.get("warnings") or []:
        console.print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)
    params, latency = summary["params"], summary["latency_ms_per_sample"]
    console.print(size_line(params))
    console.print(
        f"latency (ms/sample at batch {summary.get('latency_batch_size', 256)}, "
        f"{summary.get('device', 'cpu')}): teacher {latency['teacher']:.4f}, "
        f"student {latency['student']:.4f}"
    )
    console.print(f"rounds: {summary['rounds']}, wall time {summary['wall_s']:.1f} s")
    console.print(f"run directory: {run_dir}")


@app.command()
@user_errors
def run(
    config: ConfigArg = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory the run directory is created in.")
    ] = Path("runs"),
    overrides: SetOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print summary.json instead of the table; standard output then holds only "
            "the JSON (progress, warnings and anything a plugin prints go to standard error).",
        ),
    ] = False,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            metavar="RUN_DIR",
            help="Continue a killed or interrupted run from its last checkpoint.",
        ),
    ] = None,
    nproc: Annotated[
        int | None,
        typer.Option(
            "--nproc",
            min=1,
            help="Train on N processes of this machine (DistributedDataParallel; one GPU "
            "each with CUDA, gloo on the CPU otherwise): starts torchrun --standalone "
            "--nproc_per_node N.",
        ),
    ] = None,
) -> None:
    """Run a pipeline: teacher, knowledge encoding, student, evaluation, feedback rounds.

    Examples:

    \b
      cdkd run pipeline.yaml --set train.epochs=5 --output runs
      cdkd run --resume runs/<name>-<timestamp>    # after a crash or Ctrl-C
      cdkd run pipeline.yaml --nproc 4             # 4 processes (a GPU each)
    """
    from cdkd_core.config.loading import load_config
    from cdkd_core.engine.distributed import launched_by_torchrun
    from cdkd_core.errors import ConfigError
    from cdkd_core.run.runner import resume_run, run_pipeline

    # with --json, standard output holds the JSON alone: the rest goes to standard error
    quiet_stdout = stdout_to_stderr if json_out else contextlib.nullcontext
    with quiet_stdout():
        host = make_host()
        if resume is not None and (config is not None or overrides):
            raise ConfigError(
                "--resume continues a run with its own config.yaml: give no CONFIG or --set"
            )
        launching = nproc is not None and nproc > 1 and not launched_by_torchrun()
        if launching and resume is None:
            from cdkd_core.run.rundir import check_output_root

            load_config(config, overrides or [], host=host)  # refuse a bad config here, once
            check_output_root(output)  # and an output directory no run directory fits in
    if launching:  # the processes print for themselves (process 0 the table or the JSON)
        from cdkd_core.run.launch import launch

        args = ["--debug"] if debug_enabled() else []
        args += ["run", *([str(config)] if config is not None else []), "--output", str(output)]
        args += [a for o in overrides or [] for a in ("--set", o)]
        args += ["--quiet"] * quiet + ["--json"] * json_out
        args += ["--resume", str(resume)] if resume is not None else []
        raise typer.Exit(launch(nproc, args))
    with quiet_stdout():
        if resume is not None:
            result = resume_run(resume, host=host, quiet=quiet)
        else:
            cfg = load_config(config, overrides or [], host=host)
            result = run_pipeline(cfg, output=output, host=host, quiet=quiet)
    if not result.main:  # torchrun's other processes: process 0 reports
        return
    if json_out:
        typer.echo(json.dumps(result.summary, indent=2))
    else:
        print_summary(result.summary, result.run_dir)


@app.command()
@user_errors
def validate(
    config: ConfigArg = None,
    overrides: SetOpt = None,
) -> None:
    """Check a config (schema and every component's params) without training; with no
    CONFIG, the built-in quickstart that `cdkd run` runs without one.

    Examples:

    \b
      cdkd validate pipeline.yaml
      cdkd validate --set train.epochs=5     # the quickstart, as cdkd run would run it
    """
    from cdkd_core.config.loading import load_config

    cfg = load_config(config, overrides or [], host=make_host())  # as cdkd run loads it
    roles = ", ".join(f"{d.key} ({d.role})" for d in cfg.domains)
    source = "built-in quickstart (cdkd run without CONFIG)" if config is None else config
    typer.echo(
        f"{source}: valid — domains: {roles}; encoder {cfg.encoder.name}; "
        f"losses {', '.join(loss.name for loss in cfg.losses)}; "
        f"feedback {cfg.feedback.name}"
    )


class ExportFormat(str, Enum):
    """``cdkd export --format``: the formats of cdkd_core.artifacts.export.FORMATS."""

    onnx = "onnx"
    torchscript = "torchscript"
    export = "export"


@app.command("export")
@user_errors
def export_student(
    run_dir: Annotated[
        Path,
        typer.Argument(help="A finished run directory (it holds summary.json).", metavar="RUN_DIR"),
    ],
    formats: Annotated[
        list[ExportFormat] | None,
        typer.Option(
            "--format",
            "-f",
            help="onnx (needs pip install 'cdkd[export]'), torchscript, or export "
            "(torch.export, .pt2); repeat for several. Default: onnx.",
            metavar="FORMAT",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print manifest.json instead.")] = False,
) -> None:
    """Export a finished run's student to RUN_DIR/export/: per domain it predicts, one file
    from the raw student view (standardisation built in) to logits, and manifest.json.

    An existing RUN_DIR/export/ is replaced once every new file is written and checked.

    Example: cdkd export runs/quickstart-20261128-003053 --format onnx --format export
    """
    from cdkd_core.artifacts.export import export_run

    chosen = [f.value for f in formats] if formats else ["onnx"]
    manifest = export_run(
        run_dir,
        chosen,
        host=make_host(),
        on_file=None if json_out else lambda path: typer.echo(f"wrote {path}"),
    )
    if json_out:
        typer.echo(json.dumps(manifest, indent=2))
        return
    for name, reason in manifest["skipped"].items():
        typer.echo(f"skipped {name}: {reason}")


@app.command()
@user_errors
def components(
    kind: Annotated[
        str | None,
        typer.Argument(help="domains | architectures | encoders | losses | feedback."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List registered components, with their plugin and summary. A name two plugins
    register is listed once per plugin as <plugin>:<name> (what a config must write),
    except that a bare name a built-in has stays the built-in's.

    Example: cdkd components encoders
    """
    from cdkd_core.host.plugin_host import KINDS

    host = make_host()
    kinds = [kind] if kind else list(KINDS)
    listing = {k: host.components(k) for k in kinds}
    if json_out:
        typer.echo(
            json.dumps(
                {
                    k: [
                        {
                            "name": key,
                            "plugin": c.plugin,
                            "summary": plain_text(c.summary),
                            "params": _params(c.cls),
                            "clash": key != c.name,
                            "note": c.note,
                        }
                        for key, c in v.items()
                    ]
                    for k, v in listing.items()
                },
                indent=2,
            )
        )
        return
    for k, comps in listing.items():
        typer.echo(f"{k}:")
        for key, c in comps.items():
            clash = "  (name clash: write the plugin:name)" if key != c.name else ""
            if c.note:
                clash = f"  (bare {c.name!r} is the built-in; this one is {key!r})"
            typer.echo(f"  {key:<24} {c.plugin:<22} {plain_text(c.summary)}{clash}")


def _params(cls: type) -> dict[str, Any]:
    """Each param's JSON schema, with its default (computed defaults included)."""
    props = cls.Config.model_json_schema().get("properties", {})
    for name, field in cls.Config.model_fields.items():
        if name in props and not field.is_required():
            default = field.get_default(call_default_factory=True)
            props[name]["default"] = json.loads(json.dumps(default, default=str))
    return props


@app.command()
@user_errors
def schema(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="A Markdown reference of every key instead.")
    ] = False,
    core_only: Annotated[
        bool,
        typer.Option("--core-only", help="Only the core's built-in components (no plugins)."),
    ] = False,
) -> None:
    """Print the pipeline config's JSON Schema, each component's params included.

    Examples:

    \b
      cdkd schema > cdkd.schema.json     # then, atop a config, for editors:
                                         # yaml-language-server: $schema=cdkd.schema.json
      cdkd schema --markdown --core-only > docs/config-reference.md
    """
    from cdkd_core.config.schema import markdown_reference, schema_json
    from cdkd_core.host.plugin_host import PluginHost

    host = PluginHost(entry_points=False) if core_only else make_host()
    typer.echo(markdown_reference(host) if markdown else schema_json(host), nl=False)


STARTER = """\
# cdkd pipeline — edit, then: cdkd validate {path} && cdkd run {path}
name: my-pipeline
seed: 0
domains:                         # `cdkd components domains` lists what is installed
  - {{name: sklearn.digits, role: source}}        # the teacher learns source domains
  - {{name: sklearn.wine, role: source}}
  - {{name: sklearn.breast_cancer, role: source, weight: 1.0}}
  # your own table: a CSV with a header row and a label column
  # - {{name: tabular, alias: my_loans, role: target, label_fraction: 0.1,
  #    params: {{path: loans.csv, label: default}}}}
  # (or shots: 5 instead of label_fraction: 5 labelled examples per class)
teacher:                         # the default (docs/configuration.md, "teacher: auto")
  auto: {teacher_auto}
  #   per task of tables: the candidate best on val is kept; other tasks: the network below
  trunk: {teacher_trunk}
  stems:                         # modalities not listed: their default stem
    tabular: {teacher_tabular}
    image: {{name: cnn, params: {{channels: 32}}}}
  # without auto, the network alone, or with one of:
  # ensemble: 5                  # five of it, their probabilities averaged: a stronger teacher
  # maml: {{algorithm: reptile}}   # meta-learn the trunk over the sources first
student:
  trunk: {{name: mlp, params: {{width: 32, depth: 1}}}}
  stems: {{image: {{name: cnn, params: {{channels: 8}}}}}}
  # weight_init: teacher_pca      # first stem layers from the teacher's principal components
  #   (teacher_tokens: a text student's token table from the teacher's tokens, nlp plugin)
encoder: {{name: pca, params: {{dim: 16}}}}         # pca | linear | graph | knowledge_graph
losses:                          # the student's objective: a weighted sum
  - {{name: ce, weight: 1.0}}
  - {{name: kd, weight: 1.0, params: {{temperature: 4.0}}}}
  - {{name: hint, weight: 0.5}}
feedback: {{name: none}}           # none | mutual | hard_examples | meta (params: {{rounds: 2}})
train: {{epochs: 30, batch_size: 64, lr: 0.003, device: auto,
        {teacher_train}}}   # the teacher's defaults on tables
"""


def starter_config(path: Path) -> str:
    """The text ``cdkd init`` writes: :data:`STARTER` with the default teacher (what a config
    without ``teacher:`` gets) and the training settings it was chosen with."""
    import yaml

    from cdkd_core.config.models import DEFAULT_TEACHER_TRAIN, PipelineConfig

    def flow(value: Any) -> str:
        return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1000).strip()

    teacher = PipelineConfig.model_fields["teacher"].get_default(call_default_factory=True)
    return STARTER.format(
        path=path,
        teacher_auto=flow(teacher.auto.model_dump()),
        teacher_trunk=flow(teacher.trunk.model_dump(exclude_defaults=True)),
        teacher_tabular=flow(teacher.stems["tabular"].model_dump(exclude_defaults=True)),
        teacher_train=flow(DEFAULT_TEACHER_TRAIN)[1:-1],
    )


@app.command()
@user_errors
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("cdkd.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter config.

    Example: cdkd init pipeline.yaml
    """
    from cdkd_core.errors import CdkdError
    from cdkd_core.files import atomic_write_text

    if path.exists() and not force:
        raise CdkdError(f"{path} exists; use --force to overwrite it")
    atomic_write_text(path, starter_config(path))
    typer.echo(f"wrote {path}")


app.command("report")(report)  # defined in cdkd_core.cli.report
app.command("graph")(graph)  # defined in cdkd_core.cli.graph
app.command("predict")(predict)  # defined in cdkd_core.cli.predict
