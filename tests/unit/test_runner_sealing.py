"""Sealing at rest and HKDF (spec runner.md §3.8): RFC 5869 vectors, tamper and key checks."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from fulmen.errors import ConfigError, KeyStoreError
from fulmen.runner.hkdf import MAX_LENGTH, hkdf_sha256
from fulmen.runner.registry import WorkerRecord
from fulmen.runner.sealing import Sealer, load_master_key

# RFC 5869, Appendix A: test cases 1-3 (SHA-256).
RFC5869 = [
    ("0b" * 22, "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 42,
     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
     "34007208d5b887185865"),
    ("".join(f"{i:02x}" for i in range(0x00, 0x50)),
     "".join(f"{i:02x}" for i in range(0x60, 0xB0)),
     "".join(f"{i:02x}" for i in range(0xB0, 0x100)), 82,
     "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
     "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
     "cc30c58179ec3e87c14c01d5c1f3434f1d87"),
    ("0b" * 22, "", "", 42,
     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
     "9d201395faa4b61a96c8"),
]  # fmt: skip


@pytest.mark.parametrize(("ikm", "salt", "info", "length", "okm"), RFC5869)
def test_hkdf_matches_rfc5869(ikm: str, salt: str, info: str, length: int, okm: str) -> None:
    out = hkdf_sha256(
        bytes.fromhex(ikm), length, salt=bytes.fromhex(salt), info=bytes.fromhex(info)
    )
    assert out.hex() == okm


@pytest.mark.parametrize("length", [0, MAX_LENGTH + 1])
def test_hkdf_refuses_lengths_outside_the_rfc(length: int) -> None:
    with pytest.raises(ValueError, match="output length"):
        hkdf_sha256(b"k" * 32, length)


def test_a_sealed_record_opens_only_unaltered_in_its_place_under_its_key() -> None:
    sealer = Sealer(b"m" * 32)
    record = sealer.seal(b"secret", b"place")
    assert b"secret" not in record and sealer.open(record, b"place") == b"secret"
    assert sealer.seal(b"secret", b"place") != record  # a fresh nonce each time
    for index in range(len(record)):
        flipped = record[:index] + bytes([record[index] ^ 0x80]) + record[index + 1 :]
        with pytest.raises(KeyStoreError):
            sealer.open(flipped, b"place")
    with pytest.raises(KeyStoreError, match="does not open"):
        sealer.open(record, b"elsewhere")
    with pytest.raises(KeyStoreError, match="does not open"):
        Sealer(b"n" * 32).open(record, b"place")
    with pytest.raises(KeyStoreError, match="malformed"):
        sealer.open(record[:10], b"place")
    assert "m" * 8 not in repr(sealer)


RECORD = WorkerRecord(
    id="w1", name="n", type="module", script="print(1)\n", script_sha256="ab" * 32,
    schedule="* * * * *", timezone="UTC", events=("t",), args={"a": 1.5},
    policy={"types": ["module"]}, identity_name=None, identity_id=b"\x01" * 32,
    run_on_create=True, error_policy="continue", state="ready", created_at=1.25,
)  # fmt: skip
CHANGED: dict[str, Any] = {
    "id": "w2", "name": None, "type": "classic", "script": "print(2)\n",
    "script_sha256": "cd" * 32, "schedule": None, "timezone": "Europe/Berlin", "events": (),
    "args": {"a": 2}, "policy": {}, "identity_name": "app", "identity_id": b"\x02" * 32,
    "run_on_create": False, "error_policy": "terminate", "created_at": 1.5,
}  # fmt: skip


def test_a_signature_covers_every_field_fixed_at_creation() -> None:
    sealer = Sealer(b"m" * 32)
    tag = sealer.sign(RECORD.signed())
    mac_key = hkdf_sha256(b"m" * 32, 32, info=b"smartworker/worker-mac/v1")
    assert tag == hmac.new(mac_key, RECORD.signed(), hashlib.sha256).digest()
    assert sealer.verify(RECORD.signed(), tag)
    assert not Sealer(b"n" * 32).verify(RECORD.signed(), tag)
    assert mac_key != hkdf_sha256(b"m" * 32, 32, info=b"smartworker/seal/v1")
    for name, value in CHANGED.items():
        assert not sealer.verify(dataclasses.replace(RECORD, **{name: value}).signed(), tag), name
    moving = {"state": "crashed", "last_run": 9.0, "next_run": 10.0}
    assert sealer.verify(dataclasses.replace(RECORD, **moving).signed(), tag)
    assert set(CHANGED) | set(moving) == {f.name for f in dataclasses.fields(WorkerRecord)}
    # What the file gives back (JSON columns re-read) verifies as what was stored.
    assert sealer.verify(WorkerRecord.from_row(RECORD.params()).signed(), tag)


def test_the_master_key_file_is_made_once_0600_and_must_stay_private(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = load_master_key(str(path), create=True)
    assert len(key) == 32 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_master_key(str(path), create=True) == key
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="make it 0600"):
        load_master_key(str(path), create=False)
    hexed = tmp_path / "hex.key"
    hexed.write_text("ab" * 32 + "\n")
    hexed.chmod(0o600)
    assert load_master_key(str(hexed), create=False) == b"\xab" * 32
    short = tmp_path / "short.key"
    short.write_bytes(b"x" * 31)
    short.chmod(0o600)
    with pytest.raises(ConfigError, match="32 bytes"):
        load_master_key(str(short), create=False)
    with pytest.raises(ConfigError, match="does not exist"):
        load_master_key(str(tmp_path / "missing.key"), create=False)
