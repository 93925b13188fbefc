"""The instance's settings (issue 18): api/instance.py."""

from __future__ import annotations

from pydantic import BaseModel

from fulmen.coordinator.api.schemas.common import InputDoc
from fulmen.store import InstanceSettings


class InstanceSettingsDoc(BaseModel):
    """What an instance admin may change at run time."""

    #: Every user who signs in with a password needs a TOTP second factor; one without is
    #: sent to set it up before any other page. Single sign-on (the provider is responsible
    #: for the second factor) and API tokens are not affected.
    require_mfa: bool

    @classmethod
    def of(cls, settings: InstanceSettings) -> InstanceSettingsDoc:
        return cls(require_mfa=settings.require_mfa)


class InstanceSettingsIn(InputDoc):
    """The settings to change; a setting left out keeps its value."""

    require_mfa: bool | None = None
