"""OAuth2 credentials' one HTTP call (issue 19): a form POSTed to a provider's token
endpoint, its JSON answer back. Every decision is oauth2.py's.

httpx2, as single sign-on's calls (oidc_client.py): no client library for one request. The
form holds the client secret and a code or refresh token: it goes only to the token URL the
credential names (https://, or this machine), and is never logged; the provider's error is
logged by its code and description only. The token URL is a project admin's choice, so the
request goes through the outbound policy's transport (outbound_http.py): a token URL that
leads to this host or the internal network, unless the operator allows it, is refused
(``destination_refused``) before anything is sent. Redirects are not followed: the form goes
to the token URL or nowhere.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import httpx2

from fulmen.coordinator import oauth2
from fulmen.coordinator.outbound_http import DestinationRefused, Outbound
from fulmen.errors import CredentialError

__all__ = ["TIMEOUT", "token_request"]

log = logging.getLogger(__name__)

#: Seconds a token request may take: a run (or a person on the dashboard) waits for it.
TIMEOUT: Final = 10.0


async def token_request(
    url: str,
    form: Mapping[str, str],
    outbound: Outbound,
    *,
    timeout: float = TIMEOUT,
) -> dict[str, Any]:
    """The token endpoint's answer to ``form``.

    Raises:
        CredentialError: ``reauthorization_required`` (the grant was refused),
            ``destination_refused`` (the outbound policy refused the token URL's host) or
            ``provider_unavailable`` (not reached, or no JSON token answer).
    """
    try:
        async with httpx2.AsyncClient(
            timeout=timeout, transport=outbound.transport(), follow_redirects=False
        ) as http:
            reply = await http.post(url, data=dict(form), headers={"Accept": "application/json"})
    except DestinationRefused as error:
        log.warning("the OAuth2 token endpoint %s was refused: %s", url, error)
        raise CredentialError(
            f"the token URL {url} was not asked: {error}", code="destination_refused"
        ) from None
    except httpx2.HTTPError as error:
        log.warning("the OAuth2 token endpoint %s was not reached: %r", url, error)
        raise CredentialError(
            f"the provider's token endpoint {url} was not reached ({type(error).__name__}); "
            "it is tried again at the next use",
            code="provider_unavailable",
        ) from None
    try:
        body = reply.json()
    except ValueError:
        body = None
    answer: dict[str, Any] = body if isinstance(body, dict) else {}
    if reply.status_code >= 400 or "error" in answer:
        refused = oauth2.refusal(reply.status_code, answer)
        log.warning("the OAuth2 token endpoint %s refused: %s", url, refused.message)
        raise refused
    if not answer:
        raise CredentialError(
            f"the provider's token endpoint {url} did not answer with a JSON object "
            f"(status {reply.status_code})",
            code="provider_unavailable",
        )
    return answer
