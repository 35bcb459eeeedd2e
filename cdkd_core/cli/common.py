"""What the commands share: the debug flag, error reporting, the plugin host."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])

state: dict[str, bool] = {"debug": False}


def debug_enabled() -> bool:
    """``--debug`` was given (or ``CDKD_DEBUG`` is set)."""
    return state["debug"] or os.environ.get("CDKD_DEBUG", "") not in ("", "0")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` to stderr and return the Exit to raise (under torchrun,
    process 0 alone prints: the others meet the same error)."""
    if os.environ.get("RANK", "0") == "0":
        typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def user_errors(fn: F) -> F:
    """Turn errors a user can cause into one message and a non-zero exit (traceback only
    with ``--debug``)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from cdkd_core.errors import CdkdError

        try:
            return fn(*args, **kwargs)
        except CdkdError as exc:
            if debug_enabled():
                raise
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def make_host() -> Any:
    """The plugin host with built-ins and installed plugins; failures are warned about."""
    from cdkd_core.plugins import PluginHost

    host = PluginHost()
    for info in host.failed_plugins():
        version = f" {info.version}" if info.version else ""
        typer.echo(
            f"warning: plugin {info.name!r}{version} failed: {'; '.join(info.errors)} "
            "(see `cdkd plugins list`)",
            err=True,
        )
    return host


def stdout_is_terminal() -> bool:
    """Whether standard output is a terminal."""
    return sys.stdout.isatty()
