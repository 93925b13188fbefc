"""Whether a webhook request proves one of its trigger's auth methods. Pure: no I/O.

A trigger with no methods is open. Otherwise the request must match at least one: an ``api``
method by the ``x-api-key`` header, a ``basic`` method by ``Authorization: Basic``. Every
method is compared, whatever matched before, and each comparison is constant-time
(``hmac.compare_digest`` over the UTF-8 bytes), so how long a check takes says nothing about
how close a guess was, nor which method it was close to. Secrets and header values are never
logged, here or by the caller: the decision carries only which method matched.

Lightning (lib/lightning_web/plugs/webhook_auth.ex) answers wrong credentials with 404, to
hide that the webhook exists, and missing ones with 401; issue 8 asks for 401 for any request
that fails every method, which is what the caller sends.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fulmen.store import WebhookAuthType, WebhookSecret

__all__ = ["API_KEY_HEADER", "Decision", "check"]

API_KEY_HEADER = "x-api-key"
_BASIC = "basic "


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    #: The method that matched (for the log: an id, never a secret).
    method_id: str | None = None
    #: Why a request was refused, for the log: ``no_credentials`` or ``wrong_credentials``.
    reason: str | None = None


def check(methods: Sequence[WebhookSecret], headers: Mapping[str, str]) -> Decision:
    """Decide one request; ``headers`` keyed by lower-case name (as Starlette gives them)."""
    if not methods:
        return Decision(allowed=True)
    key = headers.get(API_KEY_HEADER)
    login = _basic(headers.get("authorization"))
    matched: str | None = None
    for method in methods:
        if _matches(method, key, login) and matched is None:
            matched = method.method_id
    if matched is not None:
        return Decision(allowed=True, method_id=matched)
    given = key is not None or headers.get("authorization") is not None
    return Decision(allowed=False, reason="wrong_credentials" if given else "no_credentials")


def _matches(method: WebhookSecret, key: str | None, login: tuple[str, str] | None) -> bool:
    if method.auth_type is WebhookAuthType.API:
        return key is not None and _same(key, method.api_key)
    if login is None:
        return False
    user = _same(login[0], method.username)
    password = _same(login[1], method.password)
    return user and password


def _same(given: str, stored: str | None) -> bool:
    if stored is None:
        return False
    return hmac.compare_digest(given.encode(), stored.encode())


def _basic(header: str | None) -> tuple[str, str] | None:
    """``(username, password)`` of an ``Authorization: Basic`` header, else ``None``."""
    if header is None or header[: len(_BASIC)].lower() != _BASIC:
        return None
    try:
        decoded = base64.b64decode(header[len(_BASIC) :].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None
