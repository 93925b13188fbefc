"""REST API tokens as stored (their digest, never the token): api_tokens.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["ApiToken"]


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A REST API token as stored: ``digest`` is the SHA-256 (hex) of its secret part."""

    id: str
    name: str
    digest: str
    inserted_at: datetime | None = None
    #: When a request last carried it (to the minute: see touch_api_token); ``None``: never.
    last_used_at: datetime | None = None
