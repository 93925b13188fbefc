"""Omni keys (spec runner.md §3.9, P2-P5): never in a worker's memory, bound to the identity,
sealed at rest, made once. White box: the tests open the sealed key with the master key."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from fulmen.runner.hkdf import hkdf_sha256
from fulmen.runner.keystore import LocalKeyStore
from fulmen.runner.sealing import Sealer, load_master_key
from fulmen_testing.runner.harness import Served, served
from fulmen_testing.runner.scripts import KEYS

pytestmark = pytest.mark.timeout(60)


async def derive(s: Served, worker_id: str, **query: Any) -> dict[str, Any]:
    reply = await s.http.post(f"/workers/{worker_id}/fetch", json=query)
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


async def real_key(s: Served, worker: dict[str, Any]) -> bytes:
    """The unsealed omni key, read the way an attacker with the state dir and master key would."""
    identity = bytes.fromhex(worker["identity_id"])
    record = await s.runner.registry.sealed_key("local", identity)
    assert record is not None
    master = load_master_key(str(s.state_dir / "master.key"), create=False)
    key = Sealer(master).open(record, LocalKeyStore.aad(identity))
    assert len(key) == 32 and key not in record
    return key


def sealed_rows(state_dir: Path) -> list[tuple[str, bytes, bytes]]:
    with sqlite3.connect(state_dir / "runner.db") as db:
        return [(r[0], bytes(r[1]), bytes(r[2])) for r in db.execute(
            "SELECT store, identity_id, blob FROM sealed_keys")]  # fmt: skip


def test_the_key_never_enters_the_worker_and_derivations_are_hkdf(tmp_path: Path) -> None:
    async def main() -> None:
        async with served(tmp_path) as s:
            worker = await s.create(KEYS)
            first = await derive(s, worker["id"])
            key = await real_key(s, worker)
            assert first["bits"] == hkdf_sha256(key, 32, salt=b"salt", info=b"info").hex()
            assert first["repr"] == "OmniKey(store='local')"
            assert first["attrs"] == ["_call", "derive_bits", "derive_key", "store"]
            # The worker searches its whole address space and every object for the key, raw
            # and as hex, knowing only its first bytes and its hash.
            hex_key = key.hex().encode()
            scanned = await derive(s, worker["id"], prefix=key[:4].hex(),
                                   digest=hashlib.sha256(key).hexdigest(),
                                   hex_prefix=hex_key[:8].decode(),
                                   hex_digest=hashlib.sha256(hex_key).hexdigest())  # fmt: skip
            assert scanned["scanned"] > 10_000_000
            assert scanned["found"] == []
            # Control: the same search does find a secret the worker holds (its derived bits).
            bits = bytes.fromhex(first["bits"])
            hex_bits = first["bits"].encode()
            control = await derive(s, worker["id"], prefix=bits[:4].hex(),
                                   digest=hashlib.sha256(bits).hexdigest(),
                                   hex_prefix=hex_bits[:8].decode(),
                                   hex_digest=hashlib.sha256(hex_bits).hexdigest())  # fmt: skip
            assert control["found"]
            await _forged_frames(s, worker, first["bits"])

    asyncio.run(main())


async def _forged_frames(s: Served, worker: dict[str, Any], own_bits: str) -> None:
    other = await s.create(KEYS + "\n# another script, another identity\n")
    forge = [
        ["raw", "omni_raw", {"store": "local"}],
        ["export", "omni_export", {}],
        ["as_other", "omni_derive", {"store": "local", "length": 32, "salt": "c2FsdA==",
                                     "info": "aW5mbw==", "worker_id": other["id"]}],
        ["config_of_other", "get_config", {"worker_id": other["id"]}],
        ["unknown_store", "omni_key", {"store": "sapphire-mainnet"}],
        ["too_long", "omni_derive", {"store": "local", "length": 9000, "salt": "", "info": ""}],
    ]  # fmt: skip
    forged = (await derive(s, worker["id"], derive=False, forge=forge))["forged"]
    assert forged["raw"] == {"raised": "BindingError", "code": "unknown_op"}
    assert forged["export"] == {"raised": "BindingError", "code": "unknown_op"}
    # The channel says who asks: a worker id in the frame is ignored.
    assert bytes.fromhex(own_bits) == __import__("base64").b64decode(forged["as_other"])
    assert forged["config_of_other"] == {}
    assert forged["unknown_store"] == {"raised": "KeyDenied", "code": "key_denied"}
    assert forged["too_long"]["code"] == "bad_request"
    assert (await derive(s, other["id"]))["bits"] != own_bits


def test_the_key_is_bound_to_script_type_and_policy(tmp_path: Path) -> None:
    async def main() -> None:
        async with served(tmp_path) as s:
            a = await s.create(KEYS)
            bits = (await derive(s, a["id"]))["bits"]
            # Delete and create again: the same identity, so the same key.
            assert (await s.http.delete(f"/workers/{a['id']}")).status_code == 204
            again = await s.create(KEYS)
            assert again["identity_id"] == a["identity_id"]
            assert (await derive(s, again["id"]))["bits"] == bits
            # One more byte, another type, another policy: each a different key.
            variants: list[dict[str, Any]] = [
                {"script": KEYS + "#"},
                {"script": KEYS + "\nregister('fetch', fetch)\n", "type": "classic"},
                {"policy": {"types": ["module"]}},
            ]
            for variant in variants:
                fields = {"script": KEYS, **variant}
                made = await s.create(fields.pop("script"), **fields)
                assert (await derive(s, made["id"]))["bits"] != bits, variant
            # Purging the key of a deleted worker makes its identity start afresh.
            assert (await s.http.delete(f"/workers/{again['id']}?purge_key=1")).status_code == 204
            fresh = await s.create(KEYS)
            assert (await derive(s, fresh["id"]))["bits"] != bits

    asyncio.run(main())


def test_a_named_identity_keeps_its_key_across_versions_only_while_the_policy_allows(
    tmp_path: Path,
) -> None:
    v1, v2 = KEYS, KEYS + "\n# version 2\n"
    sha = [hashlib.sha256(v.encode()).hexdigest() for v in (v1, v2)]

    async def main() -> None:
        async with served(tmp_path) as s:
            made = await s.http.post(
                "/identities", json={"name": "app", "policy": {"scripts": [sha[0]]}}
            )
            assert made.status_code == 201
            token = made.json()["admin_token"]
            one = await s.create(v1, identity="app")
            two = await s.create(v2, identity="app")
            bits = (await derive(s, one["id"]))["bits"]
            denied = await derive(s, two["id"])
            assert (
                denied["error"] == "KeyDenied" and "does not list this script" in denied["message"]
            )
            put = {"policy": {"scripts": sha}}
            wrong = await s.http.put(
                "/identities/app", json=put, headers={"x-identity-token": "no"}
            )
            assert wrong.status_code == 403
            ok = await s.http.put("/identities/app", json=put, headers={"x-identity-token": token})
            assert ok.status_code == 200
            assert (await derive(s, two["id"]))["bits"] == bits
            expired = {"policy": {"scripts": sha, "not_after": 1}, "admin_token": token}
            assert (await s.http.put("/identities/app", json=expired)).status_code == 200
            assert "expired" in (await derive(s, two["id"]))["message"]
            assert "admin_token" not in (await s.http.get("/identities/app")).json()

    asyncio.run(main())


def test_a_sealed_key_that_does_not_open_is_refused_never_replaced(tmp_path: Path) -> None:
    async def main() -> None:
        async with served(tmp_path) as s:
            worker = await s.create(KEYS)
            await derive(s, worker["id"])
            key = await real_key(s, worker)
        rows = sealed_rows(tmp_path)
        assert len(rows) == 1 and key not in rows[0][2] and key.hex().encode() not in rows[0][2]
        store, identity, blob = rows[0]
        tampered = blob[:20] + bytes([blob[20] ^ 1]) + blob[21:]
        with sqlite3.connect(tmp_path / "runner.db") as db:
            db.execute(
                "UPDATE sealed_keys SET blob = ? WHERE identity_id = ?", (tampered, identity)
            )
        async with served(tmp_path) as s:
            refused = await derive(s, worker["id"])
            assert refused["code"] == "key_store_error", refused
        assert sealed_rows(tmp_path) == [(store, identity, tampered)]
        with sqlite3.connect(tmp_path / "runner.db") as db:
            db.execute("UPDATE sealed_keys SET blob = ? WHERE identity_id = ?", (blob, identity))
        other_master = tmp_path / "other.key"
        other_master.write_bytes(b"\x07" * 32)
        other_master.chmod(0o600)
        async with served(tmp_path, master_key_file=str(other_master)) as s:
            # The stored worker was signed under the other master key: refused, not started.
            assert (await s.http.get(f"/workers/{worker['id']}")).json()["state"] == "refused"
            # The same script stored anew has the same identity, whose key does not open.
            again = await s.create(KEYS)
            assert again["identity_id"] == worker["identity_id"]
            assert (await derive(s, again["id"]))["code"] == "key_store_error"
        assert sealed_rows(tmp_path) == [(store, identity, blob)]

    asyncio.run(main())


def test_concurrent_first_requests_converge_on_one_key(tmp_path: Path) -> None:
    async def main() -> None:
        async with served(tmp_path) as s:
            workers = await asyncio.gather(*(s.create(KEYS, run_on_create=False) for _ in range(5)))
            assert len({w["identity_id"] for w in workers}) == 1
            results = await asyncio.gather(*(derive(s, w["id"]) for w in workers))
            assert len({r["bits"] for r in results}) == 1
        assert len(sealed_rows(tmp_path)) == 1

    asyncio.run(main())
