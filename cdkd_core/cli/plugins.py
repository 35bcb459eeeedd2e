"""``cdkd plugins``: list, available, install, new."""

from __future__ import annotations

import json
import subprocess
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from cdkd_core.cli.common import make_host, plain_text, user_errors

plugins_app = typer.Typer(
    help="Installed and available plugins.", no_args_is_help=True, rich_markup_mode=None
)


@plugins_app.command("list")
@user_errors
def list_plugins(
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Plugins that are loaded (built-ins included), their components, any errors, and
    notes (a name of theirs that a built-in keeps).

    Example: cdkd plugins list --json
    """
    host = make_host(warn=False)  # failures are what it lists
    if json_out:
        typer.echo(json.dumps([p.as_dict() for p in host.plugins.values()], indent=2))
        return
    for p in host.plugins.values():
        status = "ok" if p.ok else "FAILED"
        typer.echo(f"{p.name} {p.version or ''} [{p.source}] {status}")
        for kind, names in p.components.items():
            typer.echo(f"    {kind}: {', '.join(names)}")
        for error in p.errors:
            typer.echo(f"    error: {error}")
        for note in p.notes:
            typer.echo(f"    note: {note}")


@plugins_app.command("available")
@user_errors
def available(
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Plugins known to registry.yaml, and whether each is installed (and, if so, whether
    CDKD_PLUGINS or CDKD_DISABLE_PLUGINS skips it).

    Example: cdkd plugins available
    """
    from cdkd_core.host.catalog import catalog

    host = make_host(warn=False)
    rows = [
        {
            **entry,
            "installed": entry["name"] in host.plugins or entry["name"] in host.skipped,
            "skipped": entry["name"] in host.skipped,
        }
        for entry in catalog()
    ]
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        mark = "skipped" if row["skipped"] else "installed" if row["installed"] else "not installed"
        summary = plain_text(row.get("summary", ""))
        typer.echo(f"{row['name']:<10} {row['package']:<14} {mark:<14} {summary}")


@plugins_app.command("install")
@user_errors
def install(
    name: Annotated[str, typer.Argument(help="A registry.yaml plugin name, or a pip spec.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print what would run.")] = False,
) -> None:
    """Install a plugin into this Python environment with pip (from the local plugins/
    folder when this checkout has it).

    Example: cdkd plugins install medical
    """
    from cdkd_core.host.catalog import find_entry, repository_root

    entry = find_entry(name)
    target = name
    if entry is not None:
        root = repository_root()
        local = root / entry["path"] if root is not None and entry.get("path") else None
        target = str(local) if local is not None and local.is_dir() else entry["package"]
    command = [sys.executable, "-m", "pip", "install", target]
    typer.echo(f"will install {target!r}: {' '.join(command)}")
    if dry_run:
        return
    code = subprocess.call(command)
    if code != 0:
        raise typer.Exit(code)


class PluginKind(str, Enum):
    """``cdkd plugins new --kind``: the kind of the example component."""

    encoder = "encoder"
    domain = "domain"
    loss = "loss"
    feedback = "feedback"
    architecture = "architecture"


@plugins_app.command("new")
@user_errors
def new(
    name: Annotated[
        str,
        typer.Argument(
            help="Distribution name, also the directory (e.g. cdkd-whiten: plugin 'whiten', "
            "package cdkd_whiten).",
            metavar="NAME",
            show_default=False,
        ),
    ],
    kind: Annotated[
        PluginKind,
        typer.Option("--kind", "-k", help="Kind of the example component.", show_default=False),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory to create NAME in.")
    ] = Path("."),
) -> None:
    """Create a pip-installable plugin package OUTPUT/NAME with one working example
    component of KIND, its entry point, a README and tests.

    Example: cdkd plugins new cdkd-whiten --kind encoder --output .
    """
    from cdkd_core.scaffold import plugin_names, scaffold_plugin

    names = plugin_names(name, kind.value)
    target = scaffold_plugin(name, kind.value, output)
    typer.echo(f"created {target}")
    typer.echo(f"    plugin {names.plugin!r} (its entry point), package {names.package}")
    typer.echo(
        f"    {kind.value} {names.component!r}: {names.class_name} in "
        f"{names.package}/{names.module}.py"
    )
    typer.echo("files:")
    for path in sorted(p for p in target.rglob("*") if p.is_file()):
        typer.echo(f"    {path.relative_to(target).as_posix()}")
    steps = [f"cd {target}", 'pip install -e ".[test]"', "python -m pytest -q"]
    typer.echo("next:")
    for step in [*steps, f"cdkd components {names.kind_plural}"]:
        typer.echo(f"    {step}")
