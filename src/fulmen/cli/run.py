"""``fulmen run``: run a job file or a workflow locally, sandboxed."""

from __future__ import annotations

import click


@click.command()
@click.argument("path")
def run(path: str) -> None:
    """Run a job file or a workflow JSON in a sandboxed child."""
    raise click.ClickException("not implemented yet")
