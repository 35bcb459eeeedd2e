"""Errors a user can cause: the CLI prints their message and exits without a traceback."""

from __future__ import annotations


class CdkdError(Exception):
    """A problem with the user's input (config, data, plugin); ``exit_code`` for the CLI.

    The ``cdkd`` command prints the message of any ``CdkdError`` as one ``error:`` line and
    exits with ``exit_code``, without a traceback: word the message so that the user can
    act on it (what is wrong, where, what is expected). Raise one of the subclasses.

    Attributes:
        exit_code: The command's exit status (1; 2 for a usage, config or data problem).

    Examples:
        >>> from cdkd_core.plugin_api import CdkdError, DataError
        >>> issubclass(DataError, CdkdError), CdkdError.exit_code, DataError.exit_code
        (True, 1, 2)
    """

    exit_code = 1


class ConfigError(CdkdError):
    """An invalid config: names the field path and, where known, the valid choices.

    Examples:
        >>> from cdkd_core.plugin_api import ConfigError
        >>> raise ConfigError("domains[1].params.label: expected a column name")
        Traceback (most recent call last):
        ...
        cdkd_core.errors.ConfigError: domains[1].params.label: expected a column name
    """

    exit_code = 2


class DataError(CdkdError):
    """Unreadable or invalid data: names the file (and row) where it applies.

    A domain raises it from ``load`` (or ``fetch``) for a file it cannot read or a value it
    cannot use; the run stops with the message, naming the domain.

    Examples:
        >>> from cdkd_core.plugin_api import DataError
        >>> def check_row(path, line, cells, header):
        ...     if len(cells) != len(header):
        ...         raise DataError(f"{path}, line {line}: {len(cells)} cells, header has "
        ...                         f"{len(header)}")
        >>> check_row("table.csv", 3, ["1.5"], ["size", "label"])
        Traceback (most recent call last):
        ...
        cdkd_core.errors.DataError: table.csv, line 3: 1 cells, header has 2
    """

    exit_code = 2


class PluginError(CdkdError):
    """A plugin failed to load, register or run.

    Examples:
        >>> from cdkd_core.plugin_api import PluginError
        >>> raise PluginError("whiten: needs scikit-learn>=1.3 (pip install scikit-learn)")
        Traceback (most recent call last):
        ...
        cdkd_core.errors.PluginError: whiten: needs scikit-learn>=1.3 (pip install scikit-learn)
    """


class RunInterrupted(CdkdError):
    """Ctrl-C during a run: the last checkpoint is kept for ``cdkd run --resume``."""

    exit_code = 130


class TrainingError(CdkdError):
    """Training diverged (NaN or exploding loss).

    Examples:
        >>> import torch
        >>> from cdkd_core.plugin_api import TrainingError
        >>> loss = torch.tensor(float("nan"))
        >>> if not torch.isfinite(loss):
        ...     raise TrainingError("loss is nan at epoch 3; lower train.lr")
        Traceback (most recent call last):
        ...
        cdkd_core.errors.TrainingError: loss is nan at epoch 3; lower train.lr
    """


class ExportError(CdkdError):
    """A run that cannot be exported as asked: not a finished run directory, an unknown
    format, or a missing exporter package."""

    exit_code = 2


class ScaffoldError(CdkdError):
    """``cdkd plugins new`` cannot create the package: an invalid name, a name already
    taken, or a target directory that exists and is not empty."""

    exit_code = 2


class ReportError(CdkdError):
    """``cdkd report`` cannot read the run: not a finished run directory, or one whose
    files are missing or unreadable."""

    exit_code = 2


class RunFileError(CdkdError):
    """A file of a run directory that is missing, unreadable or not what its name says
    (a ``.safetensors`` file that is not safetensors, JSON that does not parse); the message
    names the file. Every reader of run files goes through
    :func:`cdkd_core.files.read_run_file`, which raises it."""

    exit_code = 2
