"""Running a pipeline: :func:`run_pipeline` (a new run directory) and :func:`resume_run`
(a killed or interrupted run, from its last checkpoint). The stages themselves are driven
by :class:`~cdkd_core.run.driver.Runner`."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cdkd_core.components.contracts import ContractError
from cdkd_core.config.loading import config_mapping, dump_config, load_config
from cdkd_core.config.models import PipelineConfig
from cdkd_core.engine.distributed import broadcast_object, current_world, process_group
from cdkd_core.engine.progress import Progress
from cdkd_core.errors import CdkdError, ConfigError, RunInterrupted
from cdkd_core.files import atomic_write_text
from cdkd_core.run.blame import attribute_contract, plugin_error
from cdkd_core.run.checkpoint import CHECKPOINT, PREVIOUS, Checkpointer
from cdkd_core.run.driver import Runner
from cdkd_core.run.interrupts import InterruptWatch
from cdkd_core.run.providers import check_providers
from cdkd_core.run.rundir import check_output_root, create_run_dir
from cdkd_core.run.state import RunState
from cdkd_core.stages.context import seed_everything

if TYPE_CHECKING:
    from cdkd_core.host.plugin_host import PluginHost

__all__ = ["RunResult", "Runner", "resume_run", "run_pipeline", "seed_everything"]


@dataclass
class RunResult:
    """Where a run wrote its artifacts, and its summary."""

    run_dir: Path
    summary: dict[str, Any]
    #: False in torchrun's other processes: only process 0 writes and reports
    main: bool = True


def run_pipeline(
    config: PipelineConfig | dict | str | Path | None = None,
    *,
    output: str | Path = "runs",
    overrides: list[str] | None = None,
    host: PluginHost | None = None,
    quiet: bool = True,
    checkpointer: Checkpointer | None = None,
) -> RunResult:
    """Run a pipeline and write its run directory under ``output``: what ``cdkd run``
    does.

    Started by torchrun as one of several processes, it joins their process group (unless
    the caller has) and trains with DistributedDataParallel; process 0 alone writes the
    run directory.

    Args:
        config: a validated :class:`PipelineConfig` (from :func:`load_config`), a mapping,
            a YAML path, or ``None`` for the built-in quickstart.
        output: the folder the run directory is made in.
        overrides: ``key.path=value`` strings applied to ``config`` before it runs.
        host: the plugin host; by default one over the built-ins and the installed
            plugins.
        quiet: no progress on the terminal.
        checkpointer: saves the run's state for ``cdkd run --resume`` (by default into
            the run directory's ``checkpoint.safetensors``).

    Returns:
        A ``RunResult``: ``run_dir`` (the run directory) and ``summary`` (its
        ``summary.json`` as a dict); ``main`` is False in torchrun's other processes.

    Raises:
        ConfigError: the config is invalid (nothing is written).
        DataError: a domain's data cannot be read.
        TrainingError: training diverged (the run directory says where).

    Examples:
        >>> from cdkd_core import load_config, run_pipeline  # doctest: +SKIP
        >>> result = run_pipeline(load_config("my.yaml"), output="runs")  # doctest: +SKIP
        >>> result.summary["domains"]["my_loans"]["student"]  # doctest: +SKIP
    """
    if host is None:
        from cdkd_core.host.plugin_host import PluginHost

        host = PluginHost()
    if not isinstance(config, PipelineConfig) or overrides:
        source = config_mapping(config) if isinstance(config, PipelineConfig) else config
        config = load_config(source, overrides, host=host)
    else:
        from cdkd_core.config.validation import validate_components

        validate_components(config, host)
    check_output_root(Path(output))  # on every process: none waits for a failed process 0
    with process_group(config.train.device) as world:

        def new_run_dir() -> Path:
            run_dir = create_run_dir(Path(output), config.name)
            atomic_write_text(run_dir / "config.yaml", dump_config(config))
            return run_dir

        run_dir = broadcast_object(new_run_dir() if world.main else None)
        return _execute(config, host, run_dir, quiet, None, checkpointer, fresh=True)


def resume_run(
    run_dir: str | Path,
    *,
    host: PluginHost | None = None,
    quiet: bool = True,
    checkpointer: Checkpointer | None = None,
) -> RunResult:
    """Continue a killed or interrupted run from its last checkpoint (``cdkd run
    --resume``); on CPU it ends with the metrics the run would have had uninterrupted.
    ``host``: the plugin host (the run's plugins and versions must be the ones it started
    with); by default one over the built-ins and the installed plugins."""
    run_dir = Path(run_dir)
    where = f"--resume {run_dir}"
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{where}: not a run directory (no config.yaml)")
    if (run_dir / "summary.json").is_file():
        raise ConfigError(f"{where}: this run finished already (summary.json exists)")
    if host is None:
        from cdkd_core.host.plugin_host import PluginHost

        host = PluginHost()
    check_providers(run_dir, host)  # a changed plugin or version is refused
    config = load_config(run_dir / "config.yaml", host=host)
    checkpointer = checkpointer if checkpointer is not None else Checkpointer()
    # no checkpoint yet (stopped in its first epoch): the run starts again in its directory
    state = checkpointer.load(run_dir)
    with process_group(config.train.device):
        return _execute(config, host, run_dir, quiet, state, checkpointer, fresh=False)


def _start(
    config: PipelineConfig,
    host: PluginHost,
    run_dir: Path,
    progress: Progress,
    resume: RunState | None,
    checkpointer: Checkpointer | None,
    fresh: bool,
) -> Runner:
    """The runner (building it runs plugin code: the feedback strategy); a ``fresh``
    directory is removed when that fails."""
    try:
        return Runner(config, host, run_dir, progress, resume=resume, checkpointer=checkpointer)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a plugin's sys.exit() too
        blamed = None if isinstance(exc, CdkdError) else plugin_error(host, exc, "setup")
        if fresh and current_world().main and (blamed is not None or isinstance(exc, CdkdError)):
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing ran: nothing left
        if blamed is None:
            raise
        raise blamed from exc


def _run_blaming(runner: Runner, host: PluginHost) -> dict[str, Any]:
    """``runner.run()``, an error from plugin code naming the plugin and the stage."""
    try:
        return runner.run()
    except ContractError as exc:
        attribute_contract(host, exc, runner.stage)
        raise
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a plugin's sys.exit() too (blamed only on plugin code)
        blamed = None if isinstance(exc, CdkdError) else plugin_error(host, exc, runner.stage)
        if blamed is None:
            raise
        raise blamed from exc


def _execute(
    config: PipelineConfig,
    host: PluginHost,
    run_dir: Path,
    quiet: bool,
    resume: RunState | None,
    checkpointer: Checkpointer | None,
    fresh: bool,
) -> RunResult:
    """Run (or resume) the pipeline in ``run_dir``; a ``fresh`` directory that fails before
    training is removed, so bad input leaves nothing half-written."""
    threads = torch.get_num_threads()
    if config.train.threads is not None:
        torch.set_num_threads(config.train.threads)
    deterministic = torch.are_deterministic_algorithms_enabled()
    if config.train.deterministic:
        # cuBLAS reproducibility needs a fixed workspace, set before its first use
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    main = current_world().main
    with Progress(quiet=quiet or not main) as progress, InterruptWatch() as watch:
        runner = _start(config, host, run_dir, progress, resume, checkpointer, fresh)
        watch.run = runner
        try:
            summary = _run_blaming(runner, host)
        except CdkdError:
            runner.log.close()
            if fresh and not runner.training_started and main:
                shutil.rmtree(run_dir, ignore_errors=True)  # bad data: nothing half-written
            raise
        except KeyboardInterrupt:
            runner.log.close()
            if fresh and not runner.training_started:
                if main:
                    shutil.rmtree(run_dir, ignore_errors=True)
                raise
            raise RunInterrupted(
                f"interrupted; {run_dir} keeps the last epoch's checkpoint: "
                f"cdkd run --resume {run_dir}"
            ) from None
        finally:
            runner.log.close()
            runner.scratch.close()
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic)
    if main:
        for name in (CHECKPOINT, PREVIOUS):  # a finished run needs no checkpoint
            (run_dir / name).unlink(missing_ok=True)
    return RunResult(run_dir, summary, main)
