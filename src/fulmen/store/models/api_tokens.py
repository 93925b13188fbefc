"""REST API tokens as stored (their digest, never the token): api_tokens.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fulmen.store.models.users import Role

__all__ = ["ApiToken"]


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A REST API token as stored: ``digest`` is the SHA-256 (hex) of its secret part.

    A personal token has ``user_id`` and acts with that user's roles; a service token has
    ``project_id`` and ``role`` and acts in that project only. A token with neither was made
    before any user existed (an operator's token): it acts as an instance admin, and the first
    instance admin created takes it over (users.py).
    """

    id: str
    name: str
    digest: str
    inserted_at: datetime | None = None
    #: When a request last carried it (to the minute: see touch_api_token); ``None``: never.
    last_used_at: datetime | None = None
    user_id: str | None = None
    project_id: str | None = None
    role: Role | None = None

    @property
    def service(self) -> bool:
        return self.project_id is not None
