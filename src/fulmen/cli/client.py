"""The HTTP client the CLI's commands share: where a service is, which token to send, and one
line per failure. Two services speak through it:

* the coordinator's REST API (``deploy``, ``pull``, ``runs``, ``credentials``, ``up``):
  ``--url`` / ``FULMEN_URL`` (``http://127.0.0.1:4000``), and ``FULMEN_API_TOKEN``, or the file
  ``--token-file`` / ``FULMEN_API_TOKEN_FILE``, by default the one ``fulmen up`` writes
  (``./.fulmen/api-token``);
* the runner's API (``workers``): ``--url`` / ``FULMEN_RUNNER_URL``
  (``http://127.0.0.1:8080``), and ``FULMEN_RUNNER_TOKEN``, or the file ``--token-file`` /
  ``FULMEN_RUNNER_TOKEN_FILE``, by default ``fulmen up``'s or a standalone runner's
  (``RunnerClientSettings``). A runner started with ``--no-auth`` takes no token, so none
  found is not an error until the runner asks for one.

Every failure of a call is an :class:`~fulmen.errors.ApiError` carrying the service's own
error code and message (the coordinator's ``{"error": {"code", "message"}}``, the runner's
``{"error": message, "code": code}``); :class:`RunnerApi` turns one into the line a user
reads, naming the runner's URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Self

import click
import httpx2

from fulmen.cli.bootstrap import CliError
from fulmen.config import ClientSettings, RunnerClientSettings
from fulmen.errors import ApiError, ConfigError

__all__ = [
    "Api",
    "RunnerApi",
    "connect",
    "connect_runner",
    "runner_token_file_option",
    "runner_url_option",
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
runner_url_option = click.option(
    "--url", help="The runner [FULMEN_RUNNER_URL; http://127.0.0.1:8080]."
)
runner_token_file_option = click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    help="File holding the runner's API token [FULMEN_RUNNER_TOKEN_FILE; <FULMEN_DATA_DIR or "
    ".fulmen>/runner-api-token, else <…>/runner/api-token]; FULMEN_RUNNER_TOKEN wins.",
)


class Api:
    """Calls to one service's HTTP API with its bearer token (none: no header); every failure
    is an ApiError."""

    def __init__(
        self, url: str, token: str | None, *, service: str = "coordinator", timeout: float = 30.0
    ) -> None:
        self.url = url.rstrip("/")
        self.service = service
        self._http = httpx2.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"} if token else None,
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx2.TransportError as exc:
            raise ApiError(
                f"cannot reach the {self.service} at {self.url}: {exc}", code="unreachable"
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


class RunnerApi(Api):
    """The runner's API, knowing where its token came from, so that a refusal of it says
    which token was sent (or where none was found)."""

    def __init__(self, url: str, token: str | None, *, source: str, searched: tuple[str, ...]):
        super().__init__(url, token, service="runner")
        #: ``FULMEN_RUNNER_TOKEN`` or the file the token was read from; ``""``: none sent.
        self.source = source
        #: The files looked in for a token.
        self.searched = searched

    def request(self, command: str, method: str, path: str, **kwargs: Any) -> Any:
        """:meth:`call`, each failure one line that names the runner's URL.

        Raises:
            CliError: the runner refused the request or could not be reached (exit 1).
        """
        try:
            return self.call(method, path, **kwargs)
        except ApiError as exc:
            raise CliError(command, self._line(exc), exit_code=1) from None

    def _line(self, exc: ApiError) -> str:
        if exc.code == "unreachable":
            return exc.message
        if exc.status == 401 and not self.source:
            return (
                f"the runner at {self.url} needs an API token and none was found "
                f"(FULMEN_RUNNER_TOKEN is unset; {' and '.join(self.searched)}: missing or "
                f"empty): {exc.message}"
            )
        if exc.status == 401:
            return f"the runner at {self.url} refused the token from {self.source}: {exc.message}"
        return f"{exc.message} (the runner at {self.url})"


def _refusal(method: str, path: str, status: int, body: Any) -> ApiError:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):  # the runner's shape
        code = body.get("code")
        return ApiError(error, status=status, code=code if isinstance(code, str) else None)
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
    token = _read_token(settings.token_file)
    if not token:
        message = (
            f"no API token: set FULMEN_API_TOKEN or --token-file ({settings.token_file} is "
            "missing or empty; `fulmen up` writes it, `fulmen server token create` makes one)"
        )
        raise CliError(command, message)
    return Api(settings.url, token)


def connect_runner(command: str, url: str | None, token_file: str | None) -> RunnerApi:
    """A RunnerApi for the settings, flags laid over the environment's; with no token found,
    one that sends none (a runner under ``--no-auth`` takes that).

    Raises:
        CliError: a bad ``FULMEN_RUNNER_URL`` (exit 2).
    """
    try:
        settings = RunnerClientSettings.from_env()
    except ConfigError as exc:
        raise CliError(command, exc.message) from exc
    if url:
        settings = replace(settings, url=url)
    if token_file:
        settings = replace(settings, token=None, token_files=(token_file,))
    searched = settings.token_files
    if settings.token is not None:
        return RunnerApi(
            settings.url, settings.token.value, source=settings.token.variable, searched=searched
        )
    for path in searched:
        token = _read_token(path)
        if token:
            return RunnerApi(settings.url, token, source=path, searched=searched)
    return RunnerApi(settings.url, None, source="", searched=searched)


def _read_token(path: str) -> str:
    """The token in the file, or ``""`` if it is missing, unreadable or empty."""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""
