"""Credential bodies at rest: AES-256-GCM under a key the operator provides.

Why AES-GCM rather than Fernet: the key is 32 raw bytes (any secret manager can hold it, no
base64 dance), it authenticates the credential id as associated data, so a sealed body copied
onto another credential's row does not open, and a wrong key is told apart from a damaged row
only by failing to open, which is what we report.

The layout is the one sealed-record format (fulmen.sealed). The store never reads the key
from the environment: the caller passes the bytes in.

The same cipher seals webhook auth secrets (issue 8); ``purpose`` puts those in a namespace
of their own in the associated data, so that neither kind of sealed value opens as the other.
"""

from __future__ import annotations

import orjson

from fulmen.errors import ConfigError
from fulmen.sealed import KEY_BYTES, Malformed, SealedBox, Unopened

__all__ = ["KEY_BYTES", "CredentialCipher"]


class CredentialCipher:
    """Seals and opens credential bodies (JSON objects) bound to their credential id."""

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            size = len(key) if isinstance(key, bytes) else type(key).__name__
            raise ConfigError(
                f"the credential key must be {KEY_BYTES} bytes (AES-256), got {size}",
                code="credential_key_invalid",
            )
        self._box = SealedBox(key)

    def seal(self, credential_id: str, body: object, *, purpose: str = "credential") -> bytes:
        return self._box.seal(orjson.dumps(body), _aad(credential_id, purpose))

    def open(self, credential_id: str, sealed: bytes, *, purpose: str = "credential") -> object:
        """The body, or ConfigError when this key did not seal it (or the row was altered)."""
        try:
            plain = self._box.open(sealed, _aad(credential_id, purpose))
        except Malformed:
            raise ConfigError(
                f"credential {credential_id} is stored in an unknown format",
                code="credential_unreadable",
            ) from None
        except Unopened:
            raise ConfigError(
                f"credential {credential_id} cannot be decrypted: the credential key is not "
                "the one it was stored with (or the stored value was altered)",
                code="credential_key_mismatch",
            ) from None
        return orjson.loads(plain)


def _aad(credential_id: str, purpose: str) -> bytes:
    return f"fulmen-{purpose}:".encode() + credential_id.encode()
