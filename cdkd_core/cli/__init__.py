"""The ``cdkd`` command line (Typer): one module per command group."""

from __future__ import annotations

from cdkd_core.cli.app import app


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
