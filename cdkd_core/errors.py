"""Errors a user can cause: the CLI prints their message and exits without a traceback."""

from __future__ import annotations


class CdkdError(Exception):
    """A problem with the user's input (config, data, plugin); ``exit_code`` for the CLI."""

    exit_code = 1


class ConfigError(CdkdError):
    """An invalid config: names the field path and, where known, the valid choices."""

    exit_code = 2


class DataError(CdkdError):
    """Unreadable or invalid data: names the file (and row) where it applies."""

    exit_code = 2


class PluginError(CdkdError):
    """A plugin failed to load, register or run."""


class RunInterrupted(CdkdError):
    """Ctrl-C during a run: the last checkpoint is kept for ``cdkd run --resume``."""

    exit_code = 130


class TrainingError(CdkdError):
    """Training diverged (NaN or exploding loss)."""


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
