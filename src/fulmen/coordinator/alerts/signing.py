"""How a webhook channel's POST is signed, so that its receiver can tell it came from this
Fulmen and was not replayed: the Standard Webhooks scheme (standardwebhooks.com, the one
Svix and others use; Stripe's is the same idea), so that a receiver may use any of its
libraries. Pure: no I/O.

Each POST carries three headers:

* ``webhook-id``: the delivery's id, the same on every retry of it (a receiver that has seen
  it has seen the message: the rare resend after a coordinator died mid-send is recognised);
* ``webhook-timestamp``: when this try was sent, in whole seconds since the Unix epoch;
* ``webhook-signature``: ``v1,`` and the base64 of HMAC-SHA256 over
  ``<webhook-id>.<webhook-timestamp>.<body>`` (the body's exact bytes), keyed with the bytes
  of the channel's secret (``whsec_`` and base64, shown once when the channel was made).

A receiver recomputes the signature over what it received, compares it in constant time, and
refuses a timestamp far from its own clock (:data:`TOLERANCE`, five minutes): :func:`verify`
does all three.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Final

from fulmen.store.alert_policy import secret_key

__all__ = ["ID", "SIGNATURE", "TIMESTAMP", "TOLERANCE", "headers", "signature", "verify"]

ID: Final = "webhook-id"
TIMESTAMP: Final = "webhook-timestamp"
SIGNATURE: Final = "webhook-signature"
#: The most a timestamp may differ from the receiver's clock, in seconds.
TOLERANCE: Final = 300


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``<id>.<timestamp>.<body>`` under ``secret``'s key."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of a signed POST of ``body``."""
    return {
        ID: message_id,
        TIMESTAMP: str(timestamp),
        SIGNATURE: signature(secret, message_id, timestamp, body),
    }


def verify(secret: str, received: Mapping[str, str], body: bytes, now: float) -> bool:
    """Whether ``received`` headers (names in lower case) sign ``body`` under ``secret`` at a
    time within :data:`TOLERANCE` of ``now``. Of several space-separated signatures (a
    sender rotating its secret), one that matches is enough."""
    message_id = received.get(ID, "")
    stamp = received.get(TIMESTAMP, "")
    if not message_id or not stamp.isdigit() or abs(now - int(stamp)) > TOLERANCE:
        return False
    expected = signature(secret, message_id, int(stamp), body)
    return any(
        hmac.compare_digest(given, expected) for given in received.get(SIGNATURE, "").split()
    )
