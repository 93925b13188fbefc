"""Alert webhooks: the alert's document as a JSON POST to the channel's URL, signed with its
secret (signing.py), through httpx2 as the coordinator's other HTTP clients. Any 2xx answer
is delivered; anything else, or no answer within ``FULMEN_ALERT_SEND_TIMEOUT_SECONDS``, is an
:class:`~fulmen.errors.AlertError` (``webhook_failed``) that the dispatcher retries. Redirects
are not followed: a signed POST goes where the channel says, or nowhere. The URL is a project
admin's choice, so the POST goes through the outbound policy's transport (outbound_http.py):
a host that is, or resolves to, this host or the internal network, unless the operator allows
it, is ``destination_refused`` before anything is sent, and that is what the channel shows.
"""

from __future__ import annotations

import httpx2
import orjson

from fulmen.coordinator.alerts import signing
from fulmen.coordinator.alerts.messages import Message
from fulmen.coordinator.outbound_http import DestinationRefused, Outbound
from fulmen.errors import AlertError
from fulmen.store import ClaimedDelivery

__all__ = ["WebhookSender"]

#: The most of a refusing receiver's answer kept in the channel's last error.
_ANSWER_CHARS = 200


class WebhookSender:
    def __init__(self, timeout: float, outbound: Outbound) -> None:
        self._timeout = timeout
        self._outbound = outbound

    async def send(self, delivery: ClaimedDelivery, message: Message, now: float) -> None:
        """POST ``message``'s document, signed at ``now`` (seconds since the epoch).

        Raises AlertError: ``secret_unavailable``, ``destination_refused`` or
        ``webhook_failed``.
        """
        if delivery.secret is None or delivery.url is None:
            raise AlertError(
                f"the secret of channel {delivery.channel_name!r} cannot be opened: the "
                "coordinator has no credential key, or not the one it was made with",
                code="secret_unavailable",
            )
        body = orjson.dumps(message.document)
        headers = signing.headers(delivery.secret, delivery.id, int(now), body)
        headers["content-type"] = "application/json"
        headers["user-agent"] = "Fulmen-Alerts"
        try:
            async with httpx2.AsyncClient(
                timeout=self._timeout,
                transport=self._outbound.transport(),
                follow_redirects=False,
            ) as http:
                answer = await http.post(delivery.url, content=body, headers=headers)
        except DestinationRefused as error:
            raise AlertError(
                f"the webhook {delivery.url} was not sent: {error}", code="destination_refused"
            ) from None
        except httpx2.HTTPError as error:
            raise AlertError(
                f"the webhook {delivery.url} cannot be reached ({type(error).__name__}: {error})",
                code="webhook_failed",
            ) from error
        if not 200 <= answer.status_code < 300:
            said = answer.text[:_ANSWER_CHARS].strip()
            raise AlertError(
                f"the webhook {delivery.url} answered {answer.status_code}"
                + (f": {said}" if said else ""),
                code="webhook_failed",
            )
