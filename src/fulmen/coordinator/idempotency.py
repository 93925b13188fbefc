"""The ``Idempotency-Key`` request header (issue 14) on every route that makes runs: the
webhook and the REST API's manual run and reruns.

A client whose connection was cut cannot tell whether its run was made (the coordinator may
have died after committing it, before answering), so it sends the request again: with the
same key, within the retention window (``FULMEN_IDEMPOTENCY_KEY_TTL_SECONDS``, a day), it
gets the first answer again, with ``Idempotent-Replayed: true``, and nothing new is made.
The store keeps the key in the transaction that makes the run (fulmen.store.idempotency), so
that this holds across a kill -9 and across coordinators sharing a database.

What this module decides is the HTTP side:

* *The header.* The IETF draft (draft-ietf-httpapi-idempotency-key-header) makes the value
  a Structured Field string, quoted (``"4e1f…"``); Stripe and most clients send it bare.
  Both are taken, and name the same key: 1 to 255 characters of printable ASCII (a quoted
  key may also hold spaces). Anything else, an empty key or the header sent twice, is 400
  ``idempotency_key_invalid``, and nothing is made.
* *The scope.* A key counts for one URL: the webhook's trigger, or an API route with the
  workflow or step its path names. The same key elsewhere is another key.
* *The fingerprint.* What the request asks, as canonical JSON (keys sorted), digested: the
  body (parsed, so spacing and key order do not matter) and, for a webhook, its query string
  (it goes into the run's input). The same key with another fingerprint is 422
  ``idempotency_key_reused``.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any, Final

import orjson
from fastapi import Request
from fastapi.responses import JSONResponse

from fulmen.contract import JSON
from fulmen.coordinator.api.schemas.common import DetailDoc, ErrorDoc
from fulmen.errors import InputError
from fulmen.store import Answered, IdempotencyKey
from fulmen.store.idempotency import MAX_KEY_LENGTH

__all__ = [
    "HEADER",
    "KEY_OPENAPI",
    "KEY_RESPONSES",
    "PATTERN",
    "REPLAYED",
    "KeyRefused",
    "key_of",
    "parse",
    "respond",
]

HEADER: Final = "Idempotency-Key"
#: On a replayed answer only (Stripe's name).
REPLAYED: Final = "Idempotent-Replayed"
#: The longest retention taken from the settings (100 years): beyond it, dates overflow.
MAX_TTL: Final = timedelta(days=36_500)

_DESCRIPTION: Final = (
    "A key of your choosing (1 to 255 printable ASCII characters, bare or quoted as the IETF "
    "draft has it), unique per request: sent again with the same request to the same URL "
    "within the retention window (a day by default), the first answer is given again, with "
    "`Idempotent-Replayed: true`, and no run is made. The same key with another request is "
    "422 `idempotency_key_reused`; a key that is not one is 400 `idempotency_key_invalid`."
)

#: What :func:`parse` takes (and the OpenAPI document says): a bare key of printable ASCII
#: (Stripe's), or the draft's Structured Field string (RFC 8941 §3.3.3: printable ASCII and
#: spaces in double quotes, ``\"`` and ``\\`` escaped), its content 1 to 255 characters.
PATTERN: Final = (
    rf"^(?:[!#-~][!-~]{{0,{MAX_KEY_LENGTH - 1}}}"
    rf'|"(?:[ !#-\[\]-~]|\\["\\]){{1,{MAX_KEY_LENGTH}}}")$'
)
_KEY: Final = re.compile(PATTERN)
_ESCAPE: Final = re.compile(r"\\(.)")

#: The header as the OpenAPI document shows it, for the ``openapi_extra`` of each route that
#: takes it (beside :data:`KEY_RESPONSES`). It is not a parameter of the route: FastAPI would
#: read and validate it on every request (on a webhook, most of FastAPI's own work) only for
#: :func:`key_of` to read it again, and its refusal would be a 422 of its own; key_of answers
#: 400 for a bad key (and for the header sent twice). The schema is only said.
KEY_OPENAPI: Final[dict[str, Any]] = {
    "parameters": [
        {
            "name": HEADER,
            "in": "header",
            "required": False,
            "description": _DESCRIPTION,
            "schema": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "title": HEADER,
                "description": _DESCRIPTION,
                "pattern": PATTERN,
            },
        }
    ]
}

#: The answer the header adds to a route's, for the OpenAPI document. (Its 422, the key
#: reused, fits the 422 FastAPI documents for every route with parameters.)
KEY_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    400: {
        "model": DetailDoc | ErrorDoc,
        "description": "A body that is not JSON, or an Idempotency-Key that is not one",
    },
}


class KeyRefused(InputError):
    """An ``Idempotency-Key`` header that is not one: a 400."""

    code = "idempotency_key_invalid"


def parse(value: str) -> str:
    """The key a header value names: the value itself, or a quoted string's content.

    Raises:
        KeyRefused: not a key (see the module's docstring).
    """
    if not _KEY.fullmatch(value):
        raise KeyRefused(
            f"an Idempotency-Key is 1 to {MAX_KEY_LENGTH} printable ASCII characters, bare "
            "(without spaces) or as a quoted string"
        )
    return _ESCAPE.sub(r"\1", value[1:-1]) if value.startswith('"') else value


def key_of(request: Request, scope: str, asked: JSON, ttl_seconds: float) -> IdempotencyKey | None:
    """The request's key in ``scope``, fingerprinted by what it ``asked``; ``None`` without
    the header.

    Raises:
        KeyRefused: the header is not a key, or was sent more than once.
    """
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    if len(values) > 1:
        raise KeyRefused("send one Idempotency-Key header, not several")
    digest = hashlib.sha256(orjson.dumps(asked, option=orjson.OPT_SORT_KEYS)).hexdigest()
    ttl = min(timedelta(seconds=ttl_seconds), MAX_TTL)
    return IdempotencyKey(scope=scope, key=parse(values[0]), fingerprint=digest, ttl=ttl)


def respond(answered: Answered) -> JSONResponse:
    """The answer as recorded, marked when it is a replay. The first answer goes out the same
    way, so both are the same JSON."""
    headers = {REPLAYED: "true"} if answered.replayed else None
    return JSONResponse(answered.answer.body, answered.answer.status, headers=headers)
