"""The one sealed-record format: how Fulmen keeps a secret at rest, in the store or the runner.

Why one module: the coordinator's credentials and webhook secrets (fulmen.store.cipher) and
the runner's configs and omni keys (fulmen.runner.sealing) are the same thing, a small value
sealed under a 32-byte key and bound to the row that holds it. Written twice, the two copies
had drifted (different length checks); a fix to one would have missed the other.

Layout: one version byte (``0x01``), a 12-byte random nonce, then the AES-256-GCM ciphertext
and its 16-byte tag. The associated data is the caller's: it names the record's place (a
credential id, a worker's identity…), so a record copied onto another row does not open.
What a failure means (a wrong key, an altered row) is the caller's to say, with its own error
and code; this module only tells a malformed record from one that does not open.
"""

from __future__ import annotations

import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["KEY_BYTES", "VERSION", "Malformed", "SealedBox", "Unopened"]

KEY_BYTES: Final = 32
VERSION: Final = b"\x01"
_NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16


class Unopened(Exception):
    """The record is well formed but does not open: another key, other associated data, or
    altered bytes. AES-GCM cannot tell these apart, so neither can the caller."""


class Malformed(Unopened):
    """The record is not in this format at all (an unknown version, or too short)."""


class SealedBox:
    """Seals and opens records under one 32-byte key."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a sealing key is {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SealedBox(<key hidden>)"

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return VERSION + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, record: bytes, aad: bytes) -> bytes:
        """The plaintext. Raises Malformed or Unopened; never returns something else."""
        if record[:1] != VERSION or len(record) < 1 + _NONCE_BYTES + _TAG_BYTES:
            raise Malformed("not a sealed record")
        nonce, body = record[1 : 1 + _NONCE_BYTES], record[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, aad)
        except InvalidTag:
            raise Unopened("the record does not open under this key") from None
