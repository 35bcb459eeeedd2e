"""The documentation is checked against the code: every hook, base-class method and CLI
command is documented, every command's --help has an example, and the docs' command
examples run.

How the examples run, page by page, in a fresh directory and in page order:

- a ``yaml`` block whose first line is ``# NAME.yaml`` is written to ``NAME.yaml``;
- a transcript (lines ``$ cdkd ...`` followed by the output) is run and its output must be
  exactly the documented one (with only the core's built-in plugins, as the docs show);
- every other ``cdkd`` line of a shell block is parsed by the CLI (the command and its
  options must exist); the commands that train nothing (init, validate, components,
  schema, plugins list/available, --version) also run and must exit 0, and each
  ``cdkd run`` has its config and ``--set`` overrides validated as ``cdkd run`` would
  before training. Training itself is what the rest of the suite tests.
"""

from __future__ import annotations

import inspect
import os
import re
import shlex
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import typer
import typer.main
from typer.exceptions import TyperException
from typer.testing import CliRunner

from cdkd_core.cli import app
from cdkd_core.config.loading import load_config
from cdkd_core.errors import ConfigError
from cdkd_core.host import hookspecs
from cdkd_core.host.plugin_host import ENTRY_POINT_GROUP, KINDS, base_class

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *ROOT.glob("docs/*.md")])
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
SHELL = {"bash", "sh", "console", "shell", ""}
#: commands run for real: they train nothing and write only into the working directory
SAFE = {("init",), ("validate",), ("components",), ("schema",), ("plugins", "list")}
SAFE |= {("plugins", "available")}


def _blocks(page: Path) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(page.read_text(encoding="utf-8"))]


def _command_lines(body: str) -> list[str]:
    """The ``cdkd`` command lines of a shell block (continuations joined)."""
    text = body.replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip().startswith("cdkd ")]


def _all_commands() -> list[tuple[str, str]]:
    return [
        (page.name, line)
        for page in PAGES
        for lang, body in _blocks(page)
        if lang in SHELL
        for line in _command_lines(body)
    ]


def _words(line: str) -> list[str]:
    """A command line's arguments after ``cdkd``, up to a shell operator (``>``, ``|``,
    ``&&``, ``;``) or a comment."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = []
    for word in lexer:
        if word and set(word) <= set("<>|&;"):
            break
        words.append(word)
    return words[1:]


def _rest(ctx) -> list[str]:
    """What a group's context left for its subcommand."""
    protected = getattr(ctx, "protected_args", None) or getattr(ctx, "_protected_args", [])
    return [*protected, *ctx.args]


def _parse(args: list[str]):
    """Parse ``args`` as the CLI would, running no command: the command path and the
    parsed parameters (raises the CLI's usage error)."""
    command = typer.main.get_command(app)
    ctx = command.make_context("cdkd", list(args))
    path: list[str] = []
    while hasattr(command, "commands"):  # a group
        rest = _rest(ctx)
        if not rest:
            break
        name, command, rest = command.resolve_command(ctx, rest)
        path.append(name)
        ctx = command.make_context(name, rest, parent=ctx)
    return tuple(path), ctx.params


def _core_only_env() -> dict[str, str]:
    installed = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {"CDKD_DISABLE_PLUGINS": " ".join(sorted(installed)), "COLUMNS": "200"}


# --------------------------------------------------------------------------- coverage


def test_every_hook_and_base_class_method_is_in_the_plugin_guide() -> None:
    guide = (ROOT / "docs" / "writing-plugins.md").read_text(encoding="utf-8")
    hooks = [n for n, f in vars(hookspecs).items() if n.startswith("register_") and callable(f)]
    assert len(hooks) == len(KINDS)
    missing = [h for h in hooks if f"def {h}(" not in guide]
    for kind in KINDS:
        cls = base_class(kind)
        for name, member in vars(cls).items():
            public = not name.startswith("_") and (callable(member) or isinstance(member, property))
            if public and not re.search(rf"(`|def |\.){name}\b", guide):
                missing.append(f"{cls.__name__}.{name}")
    assert not missing, f"undocumented in docs/writing-plugins.md: {missing}"


def _cli_commands() -> list[tuple[str, ...]]:
    root = typer.main.get_command(app)
    found: list[tuple[str, ...]] = []

    def walk(command, path: tuple[str, ...]) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
        else:
            found.append(path)

    walk(root, ())
    return found


def test_every_cli_command_is_documented_with_an_example() -> None:
    reference = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    documented = set()
    for _, line in _all_commands():
        try:
            documented.add(_parse(_words(line))[0])
        except (typer.Exit, TyperException):
            continue
    for path in _cli_commands():
        name = " ".join(path)
        assert f"## `cdkd {name}" in reference, f"docs/cli.md has no section for cdkd {name}"
        assert path in documented, f"no docs example runs `cdkd {name}`"
        result = CliRunner().invoke(app, [*path, "--help"])
        assert result.exit_code == 0
        assert re.search(r"Examples?:", result.output), f"cdkd {name} --help shows no example"


def test_shell_completion_is_offered() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert "--install-completion" in result.output


# --------------------------------------------------------------------------- examples


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_docs_command_examples_run(page: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for lang, body in _blocks(page):
        first = body.splitlines()[0] if body.strip() else ""
        if lang == "yaml" and re.fullmatch(r"# [\w.-]+\.ya?ml", first.strip()):
            (tmp_path / first[2:].strip()).write_text(body, encoding="utf-8")
            continue
        if lang not in SHELL:
            continue
        if body.lstrip().startswith("$ cdkd"):
            _check_transcript(page, body, runner)
            continue
        for line in _command_lines(body):
            args = _words(line)
            try:
                path, params = _parse(args)
            except typer.Exit:  # --version, --help
                continue
            except TyperException as exc:
                pytest.fail(f"{page.name}: `{line}` does not parse: {exc}")
            where = f"{page.name}: `{line}`"
            if path in SAFE and not (path == ("init",) and Path(args[-1]).exists()):
                result = runner.invoke(app, args)
                assert result.exit_code == 0, f"{where} failed:\n{result.output}"
            elif path == ("run",) and params["resume"] is None:
                config = params["config"]
                if config is None or Path(config).exists():  # else: the reader's own file
                    _check_run(page, config, params["overrides"] or [])


def _check_run(page: Path, config: Path | None, overrides: list[str]) -> None:
    """Validate a ``cdkd run`` example as ``cdkd run`` does before training; a component
    the page itself writes (a plugin of the guide) need not be installed."""
    try:
        load_config(config, overrides)
    except ConfigError as exc:
        unknown = re.search(r"unknown \w+(?: \w+)? '([\w.]+)'", str(exc))
        text = page.read_text(encoding="utf-8")
        if unknown is None or f'name = "{unknown.group(1)}"' not in text:
            raise


def _check_transcript(page: Path, body: str, runner: CliRunner) -> None:
    """Run each ``$ cdkd ...`` line and compare its output with the lines below it."""
    chunks = re.split(r"^\$ ", body, flags=re.M)[1:]
    env = _core_only_env()
    for chunk in chunks:
        line, _, expected = chunk.partition("\n")
        result = runner.invoke(app, _words(line), env={**os.environ, **env})
        assert result.exit_code != 0 or not expected.startswith("error:"), line
        assert result.output.strip() == expected.strip(), (
            f"{page.name}: the output of `{line}` differs from the docs:\n{result.output}"
        )


def test_base_class_methods_are_introspectable() -> None:
    """The coverage test reads the base classes' own members: they must have some."""
    for kind in KINDS:
        members = [n for n, m in vars(base_class(kind)).items() if inspect.isfunction(m)]
        assert members, kind
