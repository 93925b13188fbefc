"""Credential values never leave a run: not in a log line, not in an output.

One scrubber serves every place that masks: the runtime inside the child (logs, outputs,
error messages), the coordinator again on everything a worker sends (a job can replace the
child's scrubber, and an OpenFn worker does not scrub dataclips at all), and the runner for a
worker's config. It sits below all of them in the import layers.

Every string value found in the credentials (and the Basic-auth token derived from a
username and password) is replaced by ``***`` wherever it appears, and so are its encoded
forms: base64 (standard and URL-safe, padded or not, and the part of it that shows inside a
longer base64 text whatever the secret's offset there), hex (lower and upper case) and
percent-encoding. A value that spans lines (a PEM key) is also masked line by line.

Values shorter than ``MIN_SECRET_LENGTH`` are left alone: masking every "1" or "on" in a log
makes logs useless while protecting nothing (Airflow learnt this the hard way,
apache/airflow#16007); the coordinator warns when a credential with such a value is saved.
So are the values of keys that locate a service rather than unlock it (``SAFE_KEYS``: base
URL, host, username…): masking them turns "GET https://api.example.org/x returned 404" into
"GET ***/x", and a user debugging a failed call needs to see where it went.

A secret printed in two parts, one per line, is caught by the runtime's log sink
(fulmen.runtime.logs) with :meth:`Scrubber.continues` and :meth:`Scrubber.across`; those two
look at the plain values only, not at their encoded forms.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "MIN_SECRET_LENGTH", "SAFE_KEYS", "Scrubber", "short_values"]

MASK: Final = "***"
MIN_SECRET_LENGTH: Final = 4
#: The shortest run of base64 characters masked inside a longer base64 text: shorter
#: fragments (a secret of under six bytes) would hit unrelated data too often.
MIN_FRAGMENT_LENGTH: Final = 8
#: Credential keys whose values are not secret (compared case-insensitively).
SAFE_KEYS: Final = frozenset(
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
        # an OAuth2 credential's (issue 19): what kind of token, and what it may do
        "token_type",
        "scope",
        "region",
    )
)


class Scrubber:
    """Replaces known secret values, and their encoded forms, in text and JSON-like values.

    Built once per run (the regular expression holds every form of every secret), then one
    pass over each text.
    """

    def __init__(self, credentials: Iterable[Mapping[str, Any]]) -> None:
        secrets: set[str] = set()
        for credential in credentials:
            secrets.update(_secrets(credential))
        forms = {form for secret in secrets for form in _forms(secret)}
        self._pattern = _alternation(forms)
        # For a secret printed in two parts: its plain values, and their proper prefixes.
        self._plain = _alternation(secrets)
        self._longest = max(map(len, secrets), default=0)
        self._prefixes = frozenset(s[:k] for s in secrets for k in range(1, len(s)))

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

    def mask(self, text: str, head: int = 0, tail: int = 0) -> str:
        """``text`` scrubbed, with its first ``head`` and last ``tail`` characters masked too
        (the parts of secrets that :meth:`across` found spanning two lines)."""
        if not head and not tail:
            return self.text(text)
        spans = [m.span() for m in self._pattern.finditer(text)] if self._pattern else []
        if head:
            spans.append((0, min(head, len(text))))
        if tail:
            spans.append((max(len(text) - tail, 0), len(text)))
        merged: list[tuple[int, int]] = []
        for start, end in sorted(spans):
            if merged and start < merged[-1][1]:  # overlapping: one mask for both
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            elif end > start:
                merged.append((start, end))
        out: list[str] = []
        done = 0
        for start, end in merged:
            out += [text[done:start], MASK]
            done = end
        out.append(text[done:])
        return "".join(out)

    def continues(self, text: str) -> bool:
        """Whether ``text`` ends with the beginning of a secret that a next line may finish."""
        if not self._prefixes:
            return False
        n = min(len(text), self._longest - 1)
        return any(text[-k:] in self._prefixes for k in range(1, n + 1))

    def across(self, first: str, second: str) -> tuple[int, int]:
        """How many of ``first``'s last and ``second``'s first characters are parts of a
        secret that begins in ``first`` and ends in ``second``; ``(0, 0)``: none does."""
        if self._plain is None:
            return 0, 0
        reach = self._longest - 1
        before, after = first[-reach:], second[:reach]
        window, boundary = before + after, len(before)
        start, end = boundary, boundary
        for i in range(boundary):
            match = self._plain.match(window, i)  # longest first: the longest secret at i
            if match is not None and match.end() > boundary:
                start, end = min(start, i), max(end, match.end())
        return boundary - start, end - boundary


def short_values(credential: Mapping[str, Any]) -> list[str]:
    """The keys (dotted paths) of ``credential`` whose values are too short to be masked."""
    found: list[str] = []
    _short(credential, "", found)
    return found


def _short(value: Any, path: str, found: list[str]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if str(key).lower() not in SAFE_KEYS:
                _short(item, f"{path}.{key}" if path else str(key), found)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _short(item, f"{path}[{index}]", found)
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value)
        if 0 < len(text) < MIN_SECRET_LENGTH:
            found.append(path)


def _alternation(values: Iterable[str]) -> re.Pattern[str] | None:
    ordered = sorted(set(values), key=len, reverse=True)  # longest first: no partial masks
    return re.compile("|".join(map(re.escape, ordered))) if ordered else None


def _secrets(credential: Mapping[str, Any]) -> Iterable[str]:
    for value in _strings(credential):
        if len(value) >= MIN_SECRET_LENGTH:
            yield value
        if "\n" in value:  # a PEM key printed as it is: each line is masked on its own
            yield from (line for line in value.splitlines() if len(line) >= MIN_SECRET_LENGTH)
    username, password = credential.get("username"), credential.get("password")
    if isinstance(username, str) and isinstance(password, str) and password:
        yield base64.b64encode(f"{username}:{password}".encode()).decode()


def _forms(secret: str) -> Iterable[str]:
    """``secret`` and the forms it takes once encoded."""
    data = secret.encode()
    yield secret
    yield data.hex()
    yield data.hex().upper()
    yield quote(secret, safe="")
    yield quote(secret)
    yield quote_plus(secret)
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(data).decode()
        yield whole
        yield whole.rstrip("=")
        yield from _base64_fragments(data, encode)


def _base64_fragments(data: bytes, encode: Callable[[bytes], bytes]) -> Iterable[str]:
    """The base64 characters that only ``data``'s bits decide, at each of the three byte
    offsets it can have inside a longer encoded text."""
    for shift in range(3):
        encoded = encode(b"\0" * shift + data).decode().rstrip("=")
        first = -(-8 * shift // 6)  # the first character made of data bits only
        last = 8 * (shift + len(data)) // 6  # one past the last such character
        fragment = encoded[first:last]
        if len(fragment) >= MIN_FRAGMENT_LENGTH:
            yield fragment


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
