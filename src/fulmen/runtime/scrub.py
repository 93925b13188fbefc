"""Credential values never leave the child: not in a log line, not in an output.

Every string value found in the run's credentials (and the Basic-auth token derived from a
username and password) is replaced by ``***`` wherever it appears. Values shorter than
``MIN_SECRET_LENGTH`` are left alone: masking every "1" or "on" in a log makes logs useless
while protecting nothing (Airflow learnt this the hard way, apache/airflow#16007). So are the
values of keys that locate a service rather than unlock it (``SAFE_KEYS``: base URL, host,
username…): masking them turns "GET https://api.example.org/x returned 404" into "GET ***/x",
and a user debugging a failed call needs to see where it went.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASK", "Scrubber"]

MASK = "***"
MIN_SECRET_LENGTH = 4
#: Credential keys whose values are not secret (compared case-insensitively).
SAFE_KEYS = frozenset(
    k.lower()
    for k in (
        "base_url",
        "baseUrl",
        "url",
        "host",
        "hostname",
        "port",
        "username",
        "user",
        "database",
        "api_version",
        "apiVersion",
        "instance_url",
        "instanceUrl",
        "login_url",
        "loginUrl",
        "domain",
        "region",
    )
)


class Scrubber:
    """Replaces known secret values in text and in JSON-like values."""

    def __init__(self, credentials: Iterable[Mapping[str, Any]]) -> None:
        secrets: set[str] = set()
        for credential in credentials:
            secrets.update(_secrets(credential))
        ordered = sorted(secrets, key=len, reverse=True)  # longest first: no partial masks
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def value(self, value: Any) -> Any:
        """A copy of a JSON-like value with every secret masked in keys and strings."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


def _secrets(credential: Mapping[str, Any]) -> Iterable[str]:
    for value in _strings(credential):
        if len(value) >= MIN_SECRET_LENGTH:
            yield value
    username, password = credential.get("username"), credential.get("password")
    if isinstance(username, str) and isinstance(password, str) and password:
        yield base64.b64encode(f"{username}:{password}".encode()).decode()


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if str(key).lower() not in SAFE_KEYS:
                yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
