"""The REST client the CLI's commands share (``deploy``, ``pull``, ``runs``, ``up``): where the
coordinator is, which token to send, and one line per failure.

The API's address and token: ``--url`` / ``FULMEN_URL`` (``http://127.0.0.1:4000``), and
``FULMEN_API_TOKEN``, or the file ``--token-file`` / ``FULMEN_API_TOKEN_FILE``, by default the
one ``fulmen up`` writes (``./.fulmen/api-token``). Every failure of a call is an
:class:`~fulmen.errors.ApiError` carrying the API's own error code and message.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import httpx2

from fulmen.cli.bootstrap import CliError
from fulmen.config import ClientSettings
from fulmen.errors import ApiError, ConfigError

__all__ = [
    "Api",
    "connect",
    "token_file_option",
    "url_option",
]

url_option = click.option("--url", help="The coordinator [FULMEN_URL; http://127.0.0.1:4000].")
token_file_option = click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    help="File holding an API token [FULMEN_API_TOKEN_FILE; <FULMEN_DATA_DIR or .fulmen>/"
    "api-token]; FULMEN_API_TOKEN wins.",
)


class Api:
    """The few REST API calls deploy and pull make; every failure is an ApiError."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx2.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx2.TransportError as exc:
            raise ApiError(
                f"cannot reach the coordinator at {self.url}: {exc}", code="unreachable"
            ) from None
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            raise _refusal(method, path, response.status_code, body)
        return body

    def pages(self, path: str) -> Iterator[dict[str, Any]]:
        """Every item of a listing, page after page."""
        cursor = None
        while True:
            page = self.call("GET", path, params={"cursor": cursor} if cursor else None)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return


def _refusal(method: str, path: str, status: int, body: Any) -> ApiError:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        where = f" ({error['field']})" if error.get("field") else ""
        return ApiError(f"{error.get('message')}{where}", status=status, code=error.get("code"))
    detail = body.get("detail") if isinstance(body, dict) else None
    if status == 401:
        message = detail if isinstance(detail, str) else "the API token was refused"
        return ApiError(message, status=status, code="unauthorized")
    return ApiError(f"{method} {path} answered {status}: {detail or body}", status=status)


def connect(command: str, url: str | None, token_file: str | None) -> Api:
    """An Api for the settings, flags laid over the environment's.

    Raises:
        CliError: no token anywhere (exit 2).
    """
    try:
        settings = ClientSettings.from_env()
    except ConfigError as exc:
        raise CliError(command, exc.message) from exc
    if url:
        settings = replace(settings, url=url)
    if token_file:
        settings = replace(settings, token=None, token_file=token_file)
    if settings.token is not None:
        return Api(settings.url, settings.token.value)
    try:
        token = Path(settings.token_file).read_text(encoding="utf-8").strip()
    except OSError:
        token = ""
    if not token:
        message = (
            f"no API token: set FULMEN_API_TOKEN or --token-file ({settings.token_file} is "
            "missing or empty; `fulmen up` writes it, `fulmen server token create` makes one)"
        )
        raise CliError(command, message)
    return Api(settings.url, token)
