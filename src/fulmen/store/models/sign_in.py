"""What the store keeps for the second factor, single sign-on and the instance's settings
(issue 18): second_factor.py, sso_requests.py, instance_settings.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["InstanceSettings", "SecondFactor", "SsoRequest"]


@dataclass(frozen=True, slots=True)
class SecondFactor:
    """A user's TOTP secret (opened: the store keeps it sealed) and where it stands."""

    secret: str = field(repr=False)
    #: ``False`` while enrolment waits for its first code.
    enabled: bool
    #: The last 30-second step whose code was accepted (``None``: none yet).
    last_step: int | None
    #: Unused recovery codes.
    recovery_codes_left: int


@dataclass(frozen=True, slots=True)
class SsoRequest:
    """A single sign-on begun: what its callback checks and needs (the state's digest is
    the key it is kept under)."""

    nonce: str = field(repr=False)
    verifier: str = field(repr=False)
    redirect_uri: str
    #: The dashboard path to go to once signed in.
    next: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class InstanceSettings:
    """The settings an instance admin changes at run time (``instance_settings``, one row
    per field that was ever set; a field never set has its default here)."""

    #: Every user signing in with a password needs a TOTP second factor: one without is
    #: sent to enrol before anything else. Single sign-on and API tokens are not affected.
    require_mfa: bool = False
