"""HKDF-SHA256 (RFC 5869): the one derivation behind sealing keys and omni-key sub-keys.

A thin wrapper over ``cryptography``'s HKDF so that both uses, and the RFC's test vectors,
go through one function. An empty salt means RFC 5869's default (a block of zeros), which
is also what WebCrypto's HKDF does with an empty salt, so a JS worker and a Python worker
deriving from the same key with the same salt and info get the same bytes.
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["MAX_LENGTH", "hkdf_sha256"]

MAX_LENGTH: Final = 255 * 32
"""RFC 5869's limit for SHA-256: 255 blocks of 32 bytes."""


def hkdf_sha256(key: bytes, length: int, *, salt: bytes = b"", info: bytes = b"") -> bytes:
    """``length`` bytes of HKDF-SHA256 output. Raises ValueError outside 1..MAX_LENGTH."""
    if not 1 <= length <= MAX_LENGTH:
        raise ValueError(f"HKDF-SHA256 output length must be 1..{MAX_LENGTH} bytes, not {length}")
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt or None, info=info).derive(key)
