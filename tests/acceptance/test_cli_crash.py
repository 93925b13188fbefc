"""A fault nobody planned for (a bug) is one line on stderr and a report on disk, never a
traceback at the terminal (issue 21). The command is run through the real entry point,
``fulmen.cli.main``, with one subcommand that fails as a bug would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BUGGY = """
import click
from fulmen import cli

@click.command()
def broken() -> None:
    {}.pop("expected key")  # a bug, not a user's mistake

cli.COMMANDS["broken"] = "__main__:broken"
cli.main()
"""


def test_an_unexpected_fault_is_one_line_and_a_report(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    done = subprocess.run(
        [sys.executable, "-c", BUGGY, "broken"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 70
    [line] = done.stderr.splitlines()
    assert "Traceback" not in done.stderr
    [report] = (tmp_path / "state" / "fulmen" / "crash-reports").iterdir()
    assert line == (
        "fulmen: unexpected error (KeyError: 'expected key'); the full report is in "
        f"{report}: please attach it to a bug report"
    )
    text = report.read_text()
    assert text.startswith("fulmen ") and "command: " in text and "broken" in text
    assert "Traceback (most recent call last)" in text and "KeyError: 'expected key'" in text
    assert report.stat().st_mode & 0o777 == 0o600


def test_a_users_mistake_is_still_its_own_line_without_a_report(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    done = subprocess.run(
        [sys.executable, "-m", "fulmen", "run", str(tmp_path / "missing.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "state").exists()
