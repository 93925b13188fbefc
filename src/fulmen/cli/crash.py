"""What a command does with a fault nobody planned for: one line on stderr saying where the
full report was written, never a traceback (issue 21).

Every fault a user can cause is a :class:`~fulmen.cli.bootstrap.CliError` (one line, exit 2
or 1); anything else is a bug. Its traceback is of no use to the person at the terminal and
may be long, but it is what the bug report needs: it goes to a file of its own, readable by
its owner only, under ``$XDG_STATE_HOME/fulmen/crash-reports`` (``~/.local/state/...``),
with the version and the command line. The exit status is 70 (``EX_SOFTWARE``).
"""

from __future__ import annotations

import os
import platform
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from fulmen import __version__
from fulmen.config import read_environ

__all__ = ["EXIT_STATUS", "report_folder", "write_report"]

#: sysexits.h's EX_SOFTWARE: an internal software error.
EXIT_STATUS: Final = 70


def report_folder(environ: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    """``$XDG_STATE_HOME/fulmen/crash-reports``, else ``~/.local/state/fulmen/...``."""
    state = environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(state) / "fulmen" / "crash-reports"


def write_report(error: BaseException, argv: list[str]) -> Path | None:
    """Write the report of ``error`` and say where; ``None`` if it could not be written."""
    now = datetime.now(UTC)
    folder = report_folder(read_environ())
    path = folder / f"crash-{now:%Y%m%dT%H%M%S}-{os.getpid()}.txt"
    text = "".join(
        [
            f"fulmen {__version__} on Python {platform.python_version()} ({sys.platform})\n",
            f"at {now.isoformat()}\n",
            f"command: {' '.join(argv)}\n\n",
            *traceback.format_exception(error),
        ]
    )
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError:
        return None
    return path
