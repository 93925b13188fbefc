"""The master key and sealing: how configs and omni keys are kept at rest (spec runner.md §3.8).

The master key is 32 random bytes in a file of mode 0600: created once with ``O_EXCL`` in the
state directory, or given with ``--master-key-file``. It is never taken from an environment
variable: any same-uid process can read ``/proc/<pid>/environ``, even after the variable is
removed from ``os.environ``. A file whose mode lets group or others read it is refused.

Sealing is the one sealed-record format (fulmen.sealed) under ``KEK = HKDF-SHA256(master,
info="smartworker/seal/v1")``, with associated data that binds the record to its place (a key
to its store and identity, a config to its worker), so that a record copied to another row
does not open. The runner's associated data starts with the format's version byte, as it
always has, so records sealed before the format was shared still open. A record that does
not open is a :class:`~fulmen.errors.KeyStoreError`: the caller must never take that for
"absent" and make a new secret in its place.

Signing binds what is stored in plain text to the runner that stored it: each worker's
row (its script, identity and settings; ``WorkerRecord.signed``) carries an HMAC-SHA256 under
``HKDF-SHA256(master, info="smartworker/worker-mac/v1")``. Someone who can write
``runner.db`` but not read the master key cannot swap a victim's script and keep its identity,
key and config: the row no longer verifies, and the runner refuses it. One master key, one
derived key per use; a worker never sees either.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from typing import Final

from fulmen.errors import ConfigError, KeyStoreError
from fulmen.runner.hkdf import hkdf_sha256
from fulmen.sealed import VERSION, Malformed, SealedBox, Unopened

__all__ = ["MASTER_KEY_BYTES", "Sealer", "load_master_key"]

MASTER_KEY_BYTES: Final = 32


def load_master_key(path: str, *, create: bool) -> bytes:
    """Read the master key from ``path``, first creating it (0600, ``O_EXCL``) if ``create``.

    The file holds the 32 raw bytes, or 64 hex digits (and optionally a newline) for a key
    made by hand.

    Raises:
        ConfigError: the file is missing (and not to be created), readable by group or
            others, or does not hold a 32-byte key.
    """
    if create:
        _create(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise ConfigError(f"master key file {path} does not exist", code="missing") from None
    except OSError as exc:
        raise ConfigError(f"master key file {path}: {exc.strerror}", code="bad_value") from None
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"master key file {path} has mode {mode:o}; make it 0600", code="bad_value"
            )
        data = os.read(fd, 1024)
    finally:
        os.close(fd)
    return _decode(data, path)


def _create(path: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    try:
        os.write(fd, secrets.token_bytes(MASTER_KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)


def _decode(data: bytes, path: str) -> bytes:
    if len(data) == MASTER_KEY_BYTES:
        return data
    text = data.strip()
    if len(text) == 2 * MASTER_KEY_BYTES:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    raise ConfigError(
        f"master key file {path} must hold 32 bytes (raw, or 64 hex digits)", code="bad_value"
    )


class Sealer:
    """Seals and opens records under the key-encryption key derived from the master key, and
    signs and verifies them under the signing key derived from it."""

    __slots__ = ("_box", "_mac_key")

    def __init__(self, master_key: bytes) -> None:
        self._box = SealedBox(hkdf_sha256(master_key, 32, info=b"smartworker/seal/v1"))
        self._mac_key = hkdf_sha256(master_key, 32, info=b"smartworker/worker-mac/v1")

    def __repr__(self) -> str:
        return "Sealer(<key hidden>)"

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        return self._box.seal(plaintext, VERSION + aad)

    def open(self, record: bytes, aad: bytes) -> bytes:
        """Raises KeyStoreError if the record was altered, moved, or sealed under another key."""
        try:
            return self._box.open(record, VERSION + aad)
        except Malformed:
            raise KeyStoreError(
                "a sealed record is malformed; refusing to use or replace it"
            ) from None
        except Unopened:
            raise KeyStoreError(
                "a sealed record does not open (tampered, or another master key); "
                "refusing to use or replace it"
            ) from None

    def sign(self, message: bytes) -> bytes:
        """The HMAC-SHA256 of ``message`` under the signing key."""
        return hmac.new(self._mac_key, message, hashlib.sha256).digest()

    def verify(self, message: bytes, tag: bytes) -> bool:
        """Whether ``tag`` is :meth:`sign`'s for ``message`` (compared in constant time)."""
        return hmac.compare_digest(self.sign(message), tag)
