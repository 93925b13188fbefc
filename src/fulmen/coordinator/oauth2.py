"""OAuth2 credentials, the client's decisions (issue 19), without I/O: which settings a
provider needs, the authorization request (the code flow with PKCE S256 and a state), the
token requests' forms, what a token endpoint's answer means, and when a token is too old to
hand to a run. The HTTP calls are oauth2_client.py's; refreshing once across runs and
coordinators is oauth2_refresh.py's; the routes are api/oauth2.py's and
dashboard/oauth2.py's.

Facts carried over from Lightning (``Lightning.Credentials``):

* a token is refreshed when it expires within :data:`MARGIN` (five minutes), or when its
  expiry is unknown (and it can be refreshed at all);
* a token endpoint's answer gives ``expires_in`` (seconds) or ``expires_at``; the refreshed
  token keeps the previous refresh token when the provider sends no new one;
* ``invalid_grant``, or a 400 or 401 from the token endpoint, means the grant is gone: the
  credential needs re-authorisation; any other failure (unreachable, 429, 5xx, an answer
  that is no token) is temporary: the next use tries again.

The client authenticates at the token endpoint with its id and secret in the form
(``client_secret_post``), as Lightning's client does. Provider URLs are ``https://``, or
``http://`` to this machine (a provider in the tests): a token or a client secret never
crosses a network in the clear. Where the coordinator may connect at all (not this machine,
nor the internal network, unless the operator allows it) is the outbound policy's
(fulmen.outbound), checked when saved and when connecting. Refusals of settings are
:class:`~fulmen.errors.InputError` naming the field; of tokens,
:class:`~fulmen.errors.CredentialError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

from fulmen.coordinator import oidc
from fulmen.errors import CredentialError, InputError
from fulmen.store import Grant, OAuth2Secrets, OAuth2Settings

__all__ = [
    "MARGIN",
    "authorization_url",
    "checked_settings",
    "client_credentials_form",
    "code_form",
    "needs_refresh",
    "refresh_form",
    "refusal",
    "tokens_of",
]

#: How long before it expires a token is refreshed (Lightning's five minutes).
MARGIN: Final = timedelta(minutes=5)
#: The longest provider's error description kept (in the credential's problem, the audit).
_DESCRIPTION_CHARS: Final = 200
_SCOPE: Final = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # RFC 6749 §3.3 scope-token


def checked_settings(
    grant: str,
    *,
    token_url: str,
    client_id: str,
    authorization_url: str = "",
    scopes: list[str] | tuple[str, ...] = (),
) -> OAuth2Settings:
    """The settings, once each is usable.

    Raises:
        InputError: ``invalid_oauth2_settings``, naming the field.
    """
    try:
        chosen = Grant(grant)
    except ValueError:
        raise _bad(
            "grant", f"the grant must be one of {', '.join(g.value for g in Grant)}, not {grant!r}"
        ) from None
    _check_url("token_url", token_url)
    if chosen is Grant.AUTHORIZATION_CODE:
        _check_url("authorization_url", authorization_url)
    elif authorization_url:
        raise _bad("authorization_url", "the client-credentials grant has no authorization URL")
    if not client_id.strip():
        raise _bad("client_id", "the client id is missing")
    for scope in scopes:
        if not _SCOPE.match(scope):
            raise _bad("scopes", f"{scope!r} is not a scope (no spaces, quotes or backslashes)")
    return OAuth2Settings(
        grant=chosen,
        token_url=token_url,
        client_id=client_id.strip(),
        authorization_url=authorization_url,
        scopes=tuple(dict.fromkeys(scopes)),
    )


def authorization_url(
    settings: OAuth2Settings, redirect_uri: str, state: str, verifier: str
) -> str:
    """Where the browser goes to consent: the code flow, with PKCE S256 and the state."""
    query = {
        "response_type": "code",
        "client_id": settings.client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": oidc.challenge(verifier),
        "code_challenge_method": "S256",
    }
    if settings.scopes:
        query["scope"] = " ".join(settings.scopes)
    separator = "&" if urlsplit(settings.authorization_url).query else "?"
    return f"{settings.authorization_url}{separator}{urlencode(query)}"


def code_form(
    settings: OAuth2Settings, secret: str, code: str, redirect_uri: str, verifier: str
) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
        **_client(settings, secret),
    }


def refresh_form(settings: OAuth2Settings, secrets: OAuth2Secrets) -> dict[str, str]:
    """The form that gets a new token: the refresh-token grant, or a new client-credentials
    token (that grant has no refresh token, RFC 6749 §4.4.3)."""
    if settings.grant is Grant.CLIENT_CREDENTIALS:
        return client_credentials_form(settings, secrets.client_secret)
    return {
        "grant_type": "refresh_token",
        "refresh_token": secrets.refresh_token,
        **_client(settings, secrets.client_secret),
    }


def client_credentials_form(settings: OAuth2Settings, secret: str) -> dict[str, str]:
    form = {"grant_type": "client_credentials", **_client(settings, secret)}
    if settings.scopes:
        form["scope"] = " ".join(settings.scopes)
    return form


def needs_refresh(
    settings: OAuth2Settings, secrets: OAuth2Secrets, expires_at: datetime | None, now: datetime
) -> bool:
    """Whether a token must be refreshed before a run gets it (see the module's docstring)."""
    refreshable = settings.grant is Grant.CLIENT_CREDENTIALS or bool(secrets.refresh_token)
    if not secrets.access_token:
        return refreshable
    if expires_at is None:
        return refreshable
    return expires_at - now < MARGIN


def tokens_of(
    answer: Mapping[str, Any], previous: OAuth2Secrets, now: datetime
) -> tuple[OAuth2Secrets, datetime | None]:
    """The tokens a token endpoint's successful answer gives, and when the access token
    expires (``None``: the provider did not say).

    Raises:
        CredentialError: ``provider_unavailable``, an answer with no access token.
    """
    access = answer.get("access_token")
    if not isinstance(access, str) or not access:
        raise CredentialError(
            "the provider's token endpoint answered without an access token",
            code="provider_unavailable",
        )
    refresh = answer.get("refresh_token")
    token_type = answer.get("token_type")
    scope = answer.get("scope")
    secrets = OAuth2Secrets(
        client_secret=previous.client_secret,
        access_token=access,
        refresh_token=refresh if isinstance(refresh, str) and refresh else previous.refresh_token,
        token_type=token_type if isinstance(token_type, str) and token_type else "Bearer",
        scope=scope if isinstance(scope, str) else previous.scope,
    )
    return secrets, _expiry(answer, now)


def refusal(status: int, answer: Mapping[str, Any]) -> CredentialError:
    """What a token endpoint's error answer means (see the module's docstring)."""
    error = re.sub(r"[^A-Za-z0-9_.-]", "", str(answer.get("error") or status))[:40]
    description = str(answer.get("error_description") or "")[:_DESCRIPTION_CHARS]
    said = f"{error}{': ' if description else ''}{description}"
    if error == "invalid_grant" or status in (400, 401):
        return CredentialError(
            f"the provider refused to renew the token ({said}): connect the credential again",
            code="reauthorization_required",
        )
    return CredentialError(
        f"the provider could not give a token now ({said}); it is tried again at the next use",
        code="provider_unavailable",
    )


def _expiry(answer: Mapping[str, Any], now: datetime) -> datetime | None:
    seconds = answer.get("expires_in")
    if isinstance(seconds, str) and seconds.isdigit():
        seconds = int(seconds)
    if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds >= 0:
        return now + timedelta(seconds=seconds)
    at = answer.get("expires_at")
    if isinstance(at, str) and at.isdigit():
        at = int(at)
    if isinstance(at, int) and not isinstance(at, bool) and at > 0:
        return datetime.fromtimestamp(at, now.tzinfo)
    return None


def _client(settings: OAuth2Settings, secret: str) -> dict[str, str]:
    return {"client_id": settings.client_id, "client_secret": secret}


def _check_url(field: str, value: str) -> None:
    parts = urlsplit(value)
    if not value:
        raise _bad(field, f"the {field.replace('_', ' ')} is missing")
    secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in oidc.LOOPBACK)
    if not parts.hostname or not secure or parts.fragment:
        raise _bad(
            field,
            f"the {field.replace('_', ' ')} must be an https:// URL (http:// only to this "
            f"machine) without a fragment, not {value[:100]!r}",
        )


def _bad(field: str, message: str) -> InputError:
    return InputError(message, code="invalid_oauth2_settings", field=field)
