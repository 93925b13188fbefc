"""Where in a job's own code an error happened: the job's frames of a traceback, and nothing of
Fulmen's or an adaptor's, so that a user reading ``KeyError: 'b'`` also reads the line that
raised it (issue 21). Job code is compiled under a file name of its own (``job:<name>``), which
is how its frames are told apart; their source lines come from the job's body, since no file
holds it.
"""

from __future__ import annotations

import traceback

__all__ = ["job_traceback"]


def job_traceback(error: BaseException, filename: str, source: str) -> str | None:
    """``Traceback (the job's code):`` with each of the job's frames (its line number, the
    function, the line's text) and the error; None when no frame is the job's (the error was
    raised by an adaptor's code, called from no line of the job's)."""
    lines = source.splitlines()
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == filename]
    if not frames:
        return None
    out = ["Traceback (the job's code):"]
    for frame in frames:
        where = "at top level" if frame.name in ("<module>", "<job>") else f"in {frame.name}"
        out.append(f"  line {frame.lineno}, {where}")
        number = frame.lineno or 0
        if 0 < number <= len(lines) and lines[number - 1].strip():
            out.append(f"    {lines[number - 1].strip()}")
    out.append(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)
    return "\n".join(out)
