"""``fulmen keys``: generate and check the worker secret and the run-token key pair."""

from __future__ import annotations

import click


@click.group()
def keys() -> None:
    """Generate the worker secret and the run-token key pair."""
