"""The runner's HTTP API as the dashboard's smart workers pages use it (issue 17).

The coordinator knows a runner only by ``FULMEN_RUNNER_URL`` and the bearer token in
``FULMEN_RUNNER_TOKEN_FILE`` (``fulmen up`` sets both); it never imports ``fulmen.runner``.
Each call opens one short-lived client and reads the token file again, so a runner that made
a new token is followed. Every failure is a :class:`~fulmen.errors.RunnerError` whose message
a page can show as it is:

* ``runner_not_configured``: no runner URL is set;
* ``runner_unreachable``: the runner did not take the connection or did not answer in time;
* ``runner_refused``: it answered 401 or 403 (a wrong or missing token);
* ``not_found``: it has no such worker;
* ``runner_error``: any other refusal, with the runner's own message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import httpx2

from fulmen.config import CoordinatorSettings
from fulmen.errors import RunnerError

__all__ = ["NOT_CONFIGURED", "RunnerClient"]

#: Seconds one request may take: the pages wait for it.
TIMEOUT: Final = 5.0
NOT_CONFIGURED: Final = "runner_not_configured"
UNREACHABLE: Final = "runner_unreachable"
REFUSED: Final = "runner_refused"

Json = dict[str, Any]


class RunnerClient:
    """One runner: its base URL, and the file with its API token (none: no token sent)."""

    def __init__(
        self,
        url: str | None,
        token_file: str | None = None,
        *,
        timeout: float = TIMEOUT,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/") if url else None
        self.token_file = token_file
        self.timeout = timeout
        self._transport = transport

    @classmethod
    def from_settings(cls, settings: CoordinatorSettings) -> RunnerClient:
        return cls(settings.runner_url, settings.runner_token_file)

    @property
    def configured(self) -> bool:
        return self.url is not None

    async def workers(self) -> list[Json]:
        listed = await self._request("GET", "/workers")
        return [w for w in listed if isinstance(w, dict)] if isinstance(listed, list) else []

    async def worker(self, ref: str) -> Json:
        found = await self._request("GET", f"/workers/{quote(ref, safe='')}")
        return found if isinstance(found, dict) else {}

    async def runs(self, ref: str, limit: int = 20) -> list[Json]:
        listed = await self._request("GET", f"/workers/{quote(ref, safe='')}/runs?limit={limit}")
        return [r for r in listed if isinstance(r, dict)] if isinstance(listed, list) else []

    async def logs(self, ref: str, limit: int = 200) -> list[Json]:
        listed = await self._request("GET", f"/workers/{quote(ref, safe='')}/logs?limit={limit}")
        return [r for r in listed if isinstance(r, dict)] if isinstance(listed, list) else []

    async def run_now(self, ref: str) -> str:
        """The new run's id (the runner's ``run_id``), as text."""
        started = await self._request("POST", f"/workers/{quote(ref, safe='')}/run")
        return str(started.get("run_id", "")) if isinstance(started, dict) else ""

    async def restart(self, ref: str) -> None:
        await self._request("POST", f"/workers/{quote(ref, safe='')}/restart")

    async def delete(self, ref: str) -> None:
        await self._request("DELETE", f"/workers/{quote(ref, safe='')}")

    # -- internals ---------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        if not self.token_file:
            return {}
        try:
            token = Path(self.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise RunnerError(
                f"The runner's token file {self.token_file} cannot be read ({exc.strerror}).",
                code=REFUSED,
            ) from None
        return {"authorization": f"Bearer {token}"} if token else {}

    async def _request(self, method: str, path: str) -> Any:
        if self.url is None:
            raise RunnerError(
                "No runner is configured: set FULMEN_RUNNER_URL (and FULMEN_RUNNER_TOKEN_FILE).",
                code=NOT_CONFIGURED,
            )
        headers = self._headers()
        try:
            async with httpx2.AsyncClient(timeout=self.timeout, transport=self._transport) as http:
                reply = await http.request(method, self.url + path, headers=headers)
        except httpx2.HTTPError as exc:
            raise RunnerError(
                f"The runner at {self.url} cannot be reached ({type(exc).__name__}).",
                code=UNREACHABLE,
            ) from exc
        if reply.status_code in (401, 403):
            raise RunnerError(
                f"The runner at {self.url} refused the token in {self.token_file or '(none)'}.",
                code=REFUSED,
            )
        if reply.status_code >= 400:
            raise RunnerError(_message(reply), code=_code(reply))
        if reply.status_code == 204 or not reply.content:
            return None
        try:
            return reply.json()
        except ValueError:
            raise RunnerError(
                f"The runner at {self.url} answered with something that is not JSON.",
                code="runner_error",
            ) from None


def _body(reply: httpx2.Response) -> Json:
    try:
        body = reply.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _message(reply: httpx2.Response) -> str:
    error = _body(reply).get("error")
    return str(error) if error else f"The runner answered {reply.status_code}."


def _code(reply: httpx2.Response) -> str:
    code = _body(reply).get("code")
    return "not_found" if reply.status_code == 404 else str(code or "runner_error")
