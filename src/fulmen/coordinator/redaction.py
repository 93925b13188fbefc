"""Tokens never reach the coordinator's logs, at any level.

The worker socket's URL carries the worker token in its query (``/worker/websocket?token=…``,
Lightning's protocol, §1.7), and the ASGI server logs that URL: uvicorn's line for each
WebSocket it accepts or refuses (``INFO`` on ``uvicorn.error``), its access log for plain
HTTP requests (``uvicorn.access``), and at ``DEBUG`` the ``websockets`` protocol it runs,
which logs the handshake's request line and every frame (a ``run:<id>`` join carries a run
token, a ``fetch:credential`` reply a credential). :class:`TokenRedaction`, on those loggers,
rewrites each record before any handler sees it: a ``token``-like query parameter's value
becomes ``[redacted]``, so does anything shaped like a JWT or a Fulmen API token, and the
secret of an invitation link (``/ui/invitations/<secret>``, the access log's path), and a frame
is shown by its kind and size only.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from websockets.frames import Frame

__all__ = ["LOGGERS", "TokenRedaction", "install", "redact"]

#: The loggers uvicorn and its ``websockets`` protocol write to.
LOGGERS: Final = ("uvicorn.error", "uvicorn.access")

REDACTED: Final = "[redacted]"
_NAMES: Final = r"(?i:token|access_token|api_key|apikey|secret|password)"
_SECRETS: Final = re.compile(
    # a query parameter that carries a credential, up to the next parameter or the URL's end
    rf"(?P<param>[?&]{_NAMES}=)[^&\s\"']*"
    # a JSON member that does (a channel join's run token), up to its closing quote
    rf"|(?P<member>\"{_NAMES}\"\s*:\s*\")[^\"]*"
    # a JWT (header.payload.signature; both tokens Fulmen signs are JWTs) or a part of one
    r"|eyJ[\w-]{4,}(?:\.[\w-]*){0,2}"
    # an API token, fmn_<id>_<secret>
    r"|\bfmn_[0-9a-f]+_[\w-]+"
    # an invitation link's secret (issue 18): the path is the invitation
    r"|(?P<path>/ui/invitations/)[\w-]{20,}"
)


def redact(text: str) -> str:
    """``text`` with every token-shaped part replaced (see the module docstring)."""
    return _SECRETS.sub(
        lambda m: (m.group("param") or m.group("member") or m.group("path") or "") + REDACTED, text
    )


class TokenRedaction(logging.Filter):
    """Rewrites a record's message and arguments; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_safe(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _safe(arg) for key, arg in record.args.items()}
        return True


def _safe(arg: object) -> object:
    if isinstance(arg, str):
        return redact(arg)
    if isinstance(arg, Frame):
        return f"{arg.opcode.name} [{len(arg.data)} bytes]"
    return arg


_FILTER: Final = TokenRedaction()


def install() -> None:
    """Put the filter on :data:`LOGGERS` (once: adding it again changes nothing)."""
    for name in LOGGERS:
        logging.getLogger(name).addFilter(_FILTER)
