"""The ``http`` adaptor: JSON over HTTP against the credential's base URL and auth.

Everything from ``common`` is in scope too. Each call builds an async operation; when it runs,
the response body becomes ``state["data"]`` (parsed JSON when the server says it is JSON), the
previous data is pushed onto ``state["references"]``, and ``state["response"]`` holds the status,
headers and URL (removed from the step's output, like ``configuration``).

Configuration (the job's credential) keys: ``base_url`` (or ``baseUrl``), ``username`` and
``password`` for Basic auth, ``access_token`` (or ``token``) for a Bearer token, ``headers``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2

from fulmen.adaptors.common import *  # noqa: F403 - http re-exports common, as OpenFn's does
from fulmen.adaptors.common import __all__ as _common_all
from fulmen.adaptors.operation import Operation, State, expand

__all__ = [
    *_common_all,
    "HTTPError",
    "RequestError",
    "delete",
    "get",
    "patch",
    "post",
    "put",
    "request",
]

logger = logging.getLogger(__name__)
# The client's own loggers would show up as the job's output (their names are not under
# ``fulmen.adaptors``): one "HTTP Request: ..." line per call, duplicating ours, and at debug
# level every connection event with the response headers. Only their warnings are kept.
for _name in ("httpx2", "httpcore2"):
    logging.getLogger(_name).setLevel(logging.WARNING)

DEFAULT_TIMEOUT_S = 30.0


class HTTPError(Exception):
    """The server answered with an error status (4xx or 5xx)."""

    def __init__(self, method: str, url: str, status: int, reason: str, body: Any) -> None:
        super().__init__(f"{method} {shown(url)} returned {status} {reason}".rstrip())
        self.status = status
        self.body = body


class RequestError(Exception):
    """The request got no answer: the connection failed or timed out. The message names the
    method and URL (issue 21: "All connection attempts failed" named nothing)."""

    def __init__(self, method: str, url: str, what: str) -> None:
        super().__init__(f"{method} {shown(url)}: {what}")


def shown(url: str) -> str:
    """``url`` as an error message may show it: without a user and password in it."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def _no_answer(error: httpx2.TransportError, timeout: float) -> str:
    if isinstance(error, httpx2.TimeoutException):
        return f"no answer within {timeout:g} s ({type(error).__name__})"
    if isinstance(error, httpx2.ConnectError):
        return f"could not connect ({error or 'connection refused'})"
    return f"the request failed: {type(error).__name__}: {error}"


def request(
    method: str,
    path: Any,
    *,
    body: Any = None,
    params: Any = None,
    headers: Any = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    errors: bool = True,
) -> Operation:
    """An HTTP request as an operation; arguments may be lazy (functions of state)."""
    method = method.upper()

    async def run(state: State) -> State:
        config = state.get("configuration") or {}
        url = _url(config, expand(path, state))
        async with httpx2.AsyncClient(timeout=timeout, auth=_auth(config)) as client:
            try:
                response = await client.request(
                    method,
                    url,
                    json=expand(body, state),
                    params=expand(params, state),
                    headers={
                        **dict(config.get("headers") or {}),
                        **dict(expand(headers, state) or {}),
                    },
                )
            except httpx2.TransportError as error:
                raise RequestError(method, url, _no_answer(error, timeout)) from None
        data = _body(response)
        logger.info("%s %s -> %s", method, shown(url), response.status_code)
        if errors and response.status_code >= 400:
            raise HTTPError(method, url, response.status_code, response.reason_phrase, data)
        return {
            **state,
            "data": data,
            "references": [*(state.get("references") or []), state.get("data")],
            "response": {
                "status": response.status_code,
                "headers": dict(response.headers),
                "url": str(response.url),
                "method": method,
            },
        }

    return Operation(run, name=f"{method.lower()}")


def get(path: Any, **options: Any) -> Operation:
    """GET ``path`` (relative to the credential's ``base_url``, or absolute)."""
    return request("GET", path, **options)


def post(path: Any, body: Any = None, **options: Any) -> Operation:
    """POST ``body`` as JSON."""
    return request("POST", path, body=body, **options)


def put(path: Any, body: Any = None, **options: Any) -> Operation:
    """PUT ``body`` as JSON."""
    return request("PUT", path, body=body, **options)


def patch(path: Any, body: Any = None, **options: Any) -> Operation:
    """PATCH ``body`` as JSON."""
    return request("PATCH", path, body=body, **options)


def delete(path: Any, **options: Any) -> Operation:
    """DELETE ``path``."""
    return request("DELETE", path, **options)


def _url(config: Mapping[str, Any], path: object) -> str:
    text = str(path)
    if "://" in text:
        return text
    base = config.get("base_url") or config.get("baseUrl")
    if not base:
        raise ValueError(
            f"{text!r} is a relative URL, but the credential has no base_url; "
            "give an absolute URL or set base_url in the credential"
        )
    return str(base).rstrip("/") + "/" + text.lstrip("/")


def _auth(config: Mapping[str, Any]) -> httpx2.Auth | None:
    if config.get("username") is not None:
        return httpx2.BasicAuth(str(config["username"]), str(config.get("password") or ""))
    token = config.get("access_token") or config.get("token")
    if token:
        return _Bearer(str(token))
    return None


class _Bearer(httpx2.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx2.Request) -> Any:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


def _body(response: httpx2.Response) -> Any:
    if not response.content:
        return None
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except ValueError:
            pass
    return response.text
