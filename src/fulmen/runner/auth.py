"""Who may use the runner's management API: the holder of a bearer token, by default.

Every route but ``/healthz``, the OpenAPI document (``/openapi.json``: the API's shape, no
data) and the workers' own HTTP trigger (``/workers/{id}/fetch/...``, public by design) needs
``Authorization: Bearer <token>``. Being on the same host proves
nothing: a smart worker whose sandbox lets it open a socket reached an unguarded API, listed
every worker, read another's logs and destroyed its omni key (issue 13). So the token is not
optional: it is read from ``--api-token-file``, or else from ``<state>/api-token``, which the
first start makes (32 random bytes, URL-safe base64, mode 0600, ``O_EXCL`` so that a start
never replaces a token someone holds). A token file that group or others may read is
refused. ``--no-auth`` drops the check, and only for a loopback listener; start-up says so.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import stat
from dataclasses import dataclass, field
from typing import Final

from fulmen.config import RunnerSettings
from fulmen.errors import ConfigError

__all__ = ["TOKEN_FILE", "ApiAuth", "is_loopback"]

TOKEN_FILE: Final = "api-token"
"""The token's file in the state directory, unless ``--api-token-file`` names another."""


@dataclass(frozen=True)
class ApiAuth:
    """The API's token and the file it came from; no token at all under ``--no-auth``."""

    token: str | None = field(repr=False)
    path: str | None

    @classmethod
    def from_settings(cls, settings: RunnerSettings) -> ApiAuth:
        """The token of ``settings``, made first if it is the state directory's and absent.

        Raises:
            ConfigError: ``--no-auth`` on a listener other than loopback; a token file that
                cannot be read or made, is empty, or is readable by group or others.
        """
        if settings.no_auth:
            if not is_loopback(settings.host):
                raise ConfigError(
                    f"--no-auth is only for a loopback listener, not {settings.host}; "
                    "clients send the API token instead",
                    code="bad_value",
                )
            return cls(None, None)
        if settings.api_token_file is not None:
            path = os.path.abspath(settings.api_token_file)
        else:
            state = os.path.abspath(settings.state_dir)
            os.makedirs(state, mode=0o700, exist_ok=True)
            path = os.path.join(state, TOKEN_FILE)
            _create(path)
        return cls(_read(path), path)

    def allows(self, authorization: str) -> bool:
        """Whether a request with this ``Authorization`` header may use the API."""
        if self.token is None:
            return True
        return hmac.compare_digest(authorization.encode(), f"Bearer {self.token}".encode())

    def refusal(self) -> str:
        """The 401's message: the header to send and where the token is."""
        return (
            "this route needs the header 'Authorization: Bearer <token>', "
            f"with the token in {self.path} on the runner's host"
        )

    def describe(self) -> str:
        """One line for start-up."""
        if self.token is None:
            return "--no-auth: the API takes requests without a token from anyone on this host"
        return f"API token in {self.path} (send it as 'Authorization: Bearer <token>')"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address to listen on) reaches this host only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _create(path: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        message = f"cannot make API token file {path}: {exc.strerror}"
        raise ConfigError(message, code="cannot_write") from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, secrets.token_urlsafe(32).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def _read(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"API token file {path}: {exc.strerror}", code="bad_value") from None
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            raise ConfigError(
                f"API token file {path} must not be readable by others; make it 0600",
                code="bad_value",
            )
        token = os.read(fd, 4096).decode("utf-8", "replace").strip()
    finally:
        os.close(fd)
    if not token:
        raise ConfigError(f"API token file {path} is empty", code="bad_value")
    return token
