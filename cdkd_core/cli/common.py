"""What the commands share: the debug flag, error reporting, the plugin host."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import typer

if TYPE_CHECKING:
    from cdkd_core.host.plugin_host import PluginHost

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
    with ``--debug``): a :class:`~cdkd_core.errors.CdkdError`, and anything a plugin's
    code raised -- a ``sys.exit()`` included -- named with its plugin and component."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import click

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
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise  # the command's own exits and usage errors
        except BaseException as exc:
            blamed = _plugin_error(exc)
            if blamed is None or debug_enabled():
                raise  # not a plugin's: a bug of cdkd's, shown with its traceback
            raise fail(str(blamed), blamed.exit_code) from None
        finally:
            warnings.formatwarning = formatter

    return wrapper  # type: ignore[return-value]


#: the plugin hosts the running command made (:func:`make_host`), to blame a plugin's error
_hosts: list[PluginHost] = []


def _plugin_error(exc: BaseException) -> Any:
    """A PluginError naming the plugin whose code raised ``exc`` (None: no plugin's)."""
    from cdkd_core.run.blame import plugin_error

    for host in reversed(_hosts):
        blamed = plugin_error(host, exc)
        if blamed is not None:
            return blamed
    return None


def make_host(warn: bool = True) -> PluginHost:
    """The plugin host with built-ins and installed plugins; failures are warned about
    (unless not ``warn``). What a plugin prints while it loads goes to standard error, so
    standard output stays the command's own (a table, JSON, CSV a script reads)."""
    from cdkd_core.host.plugin_host import PluginHost

    with stdout_to_stderr():
        host = PluginHost()
    _hosts[:] = [host]
    if not warn:
        return host
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


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[TextIO]:
    """Send whatever is written to standard output inside to standard error instead:
    Python's ``sys.stdout`` and, where it is a real file, descriptor 1 itself (so output of
    C extensions and child processes too). Yields a stream of the real standard output,
    which the command alone writes to (``cdkd predict``'s CSV, ``cdkd run --json``): a
    script can parse it whatever a plugin printed."""
    real: TextIO = sys.stdout
    real.flush()
    saved = None
    try:
        fd = real.fileno()
        err = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        fd = None  # a captured stream (tests): redirecting sys.stdout is enough
    if fd is not None:
        saved = os.dup(fd)
        os.dup2(err, fd)
        real = os.fdopen(os.dup(saved), "w", encoding=sys.stdout.encoding or "utf-8")
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield real
    finally:
        real.flush()
        sys.stdout.flush()
        if saved is not None and fd is not None:
            real.close()
            os.dup2(saved, fd)
            os.close(saved)
