"""The ``fulmen`` command: one group, one module per subcommand.

Each subcommand turns arguments into settings and calls into the package; no logic lives here.
Errors that users can cause are reported as one line on stderr, never a traceback; any other
fault is one line too, saying where its full report was written (crash.py).

Subcommands are imported only when they are used: ``fulmen run`` must not pay for importing
the coordinator's web stack, and ``fulmen --version`` must not pay for anything. Importing
every subcommand eagerly made each start take over a second of CPU.
"""

from __future__ import annotations

import importlib
import sys

import click

from fulmen import __version__
from fulmen.cli.doclinks import link, page_of

#: name -> "module:attribute" of each subcommand, in the order ``--help`` lists them.
COMMANDS = {
    "up": "fulmen.cli.up:up",
    "run": "fulmen.cli.run:run",
    "adaptors": "fulmen.cli.adaptors:adaptors",
    "keys": "fulmen.cli.keys:keys",
    "worker": "fulmen.cli.worker:worker",
    "runner": "fulmen.cli.runner:runner",
    "workers": "fulmen.cli.workers:workers",
    "server": "fulmen.cli.server:server",
    "users": "fulmen.cli.users:users",
    "runs": "fulmen.cli.runs:runs",
    "credentials": "fulmen.cli.credentials:credentials",
    "keychains": "fulmen.cli.keychains:keychains",
    "deploy": "fulmen.cli.deploy:deploy",
    "pull": "fulmen.cli.deploy:pull",
    "docs": "fulmen.cli.docs:docs",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        link(command, ("fulmen", cmd_name))
        return command


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=f"Docs: fulmen docs {page_of(('fulmen',))}",
)
@click.version_option(__version__, prog_name="fulmen")
def cli() -> None:
    """Fulmen: run workflows and user scripts, sandboxed."""


def main() -> None:
    """Console-script entry point: an unexpected fault is one line and a report (crash.py)."""
    try:
        cli()
    except Exception as error:  # a bug: the one place that catches everything
        from fulmen.cli import crash

        where = crash.write_report(error, sys.argv)
        said = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        report = f"the full report is in {where}" if where else "no report could be written"
        click.echo(
            f"fulmen: unexpected error ({said}); {report}: please attach it to a bug report",
            err=True,
        )
        sys.exit(crash.EXIT_STATUS)
