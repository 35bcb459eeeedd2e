"""What the commands share: the debug flag, error reporting, the plugin host."""

from __future__ import annotations

import functools
import os
import re
import sys
import warnings
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


_python_format_warning = warnings.formatwarning


def _format_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    """A ``UserWarning`` (what cdkd and its plugins warn with) as one ``warning:`` line;
    other categories (deprecations from libraries) as Python formats them."""
    if issubclass(category, UserWarning):
        return f"warning: {message}\n"
    return _python_format_warning(message, category, filename, lineno, line)


def user_errors(fn: F) -> F:
    """Turn errors a user can cause into one message and a non-zero exit (traceback only
    with ``--debug``)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from cdkd_core.errors import CdkdError

        formatter = warnings.formatwarning
        if not debug_enabled():
            warnings.formatwarning = _format_warning
        try:
            return fn(*args, **kwargs)
        except CdkdError as exc:
            if debug_enabled():
                raise
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        finally:
            warnings.formatwarning = formatter

    return wrapper  # type: ignore[return-value]


def make_host() -> Any:
    """The plugin host with built-ins and installed plugins; failures are warned about."""
    from cdkd_core.host.plugin_host import PluginHost

    host = PluginHost()
    for info in host.failed_plugins():
        version = f" {info.version}" if info.version else ""
        typer.echo(
            f"warning: plugin {info.name!r}{version} failed: {'; '.join(info.errors)} "
            "(see `cdkd plugins list`)",
            err=True,
        )
    return host


_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`([^`]+)`")
_LITERAL = re.compile(r"``(.+?)``|`([^`]+)`")


def _role_text(match: re.Match[str]) -> str:
    target = match.group(1)
    if target.endswith(">") and "<" in target:  # :ref:`title <target>`
        return target.rpartition("<")[0].strip()
    return target[1:].rpartition(".")[2] if target.startswith("~") else target


def plain_text(text: str) -> str:
    """A docstring summary as a terminal shows it: reST roles (:class:`~a.B` -> B) and
    inline literals (``x`` and `x` -> x) without their markup."""
    return _LITERAL.sub(lambda m: m.group(1) or m.group(2), _ROLE.sub(_role_text, text))


def stdout_is_terminal() -> bool:
    """Whether standard output is a terminal."""
    return sys.stdout.isatty()
