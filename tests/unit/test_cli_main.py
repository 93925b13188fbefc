"""The ``fulmen`` group: every subcommand loads, and only the one used is imported."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from fulmen.cli import COMMANDS, cli


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_listed_subcommand_loads(name: str) -> None:
    ctx = click.Context(cli)
    command = cli.get_command(ctx, name)
    assert isinstance(command, click.Command)


def test_help_lists_every_subcommand_and_unknown_ones_are_refused() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in result.output
    assert CliRunner().invoke(cli, ["nope"]).exit_code == 2


def test_fulmen_run_does_not_import_the_web_stack() -> None:
    code = (
        "import sys; from fulmen.cli import cli; cli.get_command(None, 'run'); "
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'psycopg') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["run", "worker", "runner"])
def test_the_commands_that_start_a_sandbox_take_the_isolation_flags(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "--isolation L3|L2|L1|L0|best" in result.output
    assert "--network outside|none|host" in result.output
    assert "--allow-net HOST:PORT" in result.output
