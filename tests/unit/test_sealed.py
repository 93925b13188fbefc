"""The one sealed-record format: what the coordinator's and the runner's secrets at rest share.

Records sealed before the format moved into fulmen.sealed must still open: the fixed records
below were sealed by the two earlier copies of the code (store/cipher.py, runner/sealing.py).
"""

from __future__ import annotations

import orjson
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fulmen.errors import ConfigError, KeyStoreError
from fulmen.runner.hkdf import hkdf_sha256
from fulmen.runner.sealing import Sealer
from fulmen.sealed import Malformed, SealedBox, Unopened
from fulmen.store.cipher import CredentialCipher

KEY = bytes(range(32))


def test_a_record_opens_only_with_its_key_and_its_associated_data() -> None:
    box = SealedBox(KEY)
    record = box.seal(b"secret", b"row-1")
    assert box.open(record, b"row-1") == b"secret"
    with pytest.raises(Unopened):
        box.open(record, b"row-2")
    with pytest.raises(Unopened):
        SealedBox(bytes(32)).open(record, b"row-1")
    altered = record[:-1] + bytes([record[-1] ^ 1])
    with pytest.raises(Unopened):
        box.open(altered, b"row-1")


@pytest.mark.parametrize("record", [b"", b"\x01short", b"\x02" + bytes(40)])
def test_a_record_in_no_known_format_is_malformed(record: bytes) -> None:
    with pytest.raises(Malformed):
        SealedBox(KEY).open(record, b"")


def test_a_key_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SealedBox(b"short")


def test_the_store_and_the_runner_write_the_same_layout() -> None:
    stored = CredentialCipher(KEY).seal("cred-1", {"password": "p"})
    runner = Sealer(KEY).seal(b"config", b"worker-1")
    for record in (stored, runner):
        assert record[:1] == b"\x01"
        assert len(record) > 1 + 12 + 16


def test_records_sealed_before_the_move_still_open() -> None:
    cipher = CredentialCipher(KEY)
    sealer = Sealer(KEY)
    assert cipher.open("cred-1", _old_store_seal("cred-1", {"a": 1})) == {"a": 1}
    assert sealer.open(_old_runner_seal(b"cfg", b"w-1"), b"w-1") == b"cfg"


def test_each_caller_says_what_a_failure_means_in_its_own_words() -> None:
    with pytest.raises(ConfigError) as unreadable:
        CredentialCipher(KEY).open("cred-1", b"\x02junk")
    assert unreadable.value.code == "credential_unreadable"
    sealed = CredentialCipher(KEY).seal("cred-1", {"a": 1})
    with pytest.raises(ConfigError) as mismatch:
        CredentialCipher(bytes(32)).open("cred-1", sealed)
    assert mismatch.value.code == "credential_key_mismatch"
    with pytest.raises(KeyStoreError, match="does not open"):
        Sealer(bytes(32)).open(Sealer(KEY).seal(b"x", b"w"), b"w")


def _old_store_seal(credential_id: str, body: object) -> bytes:
    """What store/cipher.py wrote before: AAD ``fulmen-credential:<id>``, no version in it."""
    nonce = bytes(12)
    aad = b"fulmen-credential:" + credential_id.encode()
    return b"\x01" + nonce + AESGCM(KEY).encrypt(nonce, orjson.dumps(body), aad)


def _old_runner_seal(plaintext: bytes, aad: bytes) -> bytes:
    """What runner/sealing.py wrote before: AAD is the version byte, then the caller's."""
    kek = hkdf_sha256(KEY, 32, info=b"smartworker/seal/v1")
    nonce = bytes(12)
    return b"\x01" + nonce + AESGCM(kek).encrypt(nonce, plaintext, b"\x01" + aad)
