"""The ``fulmen`` command: one group, one module per subcommand.

Each subcommand turns arguments into settings and calls into the package; no logic lives here.
Errors that users can cause are reported as one line on stderr, never a traceback.
"""

from __future__ import annotations

import click

from fulmen import __version__
from fulmen.cli.deploy import deploy, pull
from fulmen.cli.keys import keys
from fulmen.cli.run import run
from fulmen.cli.runner import runner
from fulmen.cli.runs import runs
from fulmen.cli.server import server
from fulmen.cli.up import up
from fulmen.cli.worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fulmen")
def cli() -> None:
    """Fulmen: run workflows and user scripts, sandboxed."""


cli.add_command(up)
cli.add_command(run)
cli.add_command(keys)
cli.add_command(worker)
cli.add_command(runner)
cli.add_command(server)
cli.add_command(runs)
cli.add_command(deploy)
cli.add_command(pull)


def main() -> None:
    """Console-script entry point."""
    cli()
