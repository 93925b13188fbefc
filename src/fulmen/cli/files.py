"""Files a user names on a command line, read as text: ``-`` is standard input, and any
readable path works (``<(echo {})`` included). Each failure is one line naming the path
(``fulmen run: job.py: no such file``), never a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

from fulmen.cli.bootstrap import CliError

__all__ = ["read_text"]


def read_text(command: str, path: Path) -> str:
    """The file's text (UTF-8), or standard input's for ``-``.

    Raises:
        CliError: a directory, a missing file, or one that cannot be read as UTF-8 (exit 2).
    """
    if str(path) == "-":
        return sys.stdin.read()
    if path.is_dir():
        raise CliError(command, f"{path}: is a directory, not a file")
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(command, f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(command, f"{path}: cannot read: {exc}") from exc
