"""``fulmen keys generate``: the three variables, ready to paste or written to private files,
and accepted by an independent JWT implementation (joserfc) in both directions."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

from click.testing import CliRunner
from joserfc import jwt as jose_jwt
from joserfc.jwk import OctKey, RSAKey

from fulmen.cli.keys import keys
from fulmen.config import CoordinatorSettings, WorkerSettings
from fulmen.keys import load_private_key, load_public_key, load_worker_secret
from fulmen.tokens import mint_run_token, mint_worker_token, verify_run_token, verify_worker_token

NAMES = ("WORKER_SECRET", "WORKER_RUNS_PRIVATE_KEY", "WORKER_LIGHTNING_PUBLIC_KEY")
NOW = 1_795_358_223.0


def generate(*args: str) -> str:
    result = CliRunner().invoke(keys, ["generate", *args])
    assert result.exit_code == 0, result.output
    return result.output


def parse_env(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {name: value.strip('"') for name, value in pairs}


def test_prints_the_three_variables_with_a_note() -> None:
    output = generate()
    values = parse_env(output)
    assert tuple(values) == NAMES
    assert "coordinator" in output and "worker" in output
    load_worker_secret(values["WORKER_SECRET"])
    load_private_key(values["WORKER_RUNS_PRIVATE_KEY"])
    load_public_key(values["WORKER_LIGHTNING_PUBLIC_KEY"])


def test_seed_names_are_read_back_as_the_same_settings() -> None:
    output = generate("--names", "seed")
    values = parse_env(output)
    assert tuple(values) == ("WORKER_SECRET", "ATTEMPTS_PRIVATE_KEY", "LIGHTNING_PUBLIC_KEY")
    assert "every worker:               WORKER_SECRET, LIGHTNING_PUBLIC_KEY" in output
    worker = WorkerSettings.from_env(values)
    coordinator = CoordinatorSettings.from_env(values)
    assert worker.public_key is not None and coordinator.private_key is not None
    assert worker.public_key.value == values["LIGHTNING_PUBLIC_KEY"]
    assert coordinator.private_key.value == values["ATTEMPTS_PRIVATE_KEY"]


def test_json_format() -> None:
    document = json.loads(generate("--format", "json"))
    assert set(NAMES) <= set(document)
    assert document["needed_by"]["coordinator"] == ["WORKER_SECRET", "WORKER_RUNS_PRIVATE_KEY"]


def test_out_writes_private_files_and_prints_no_secret(tmp_path: Path) -> None:
    output = generate("--out", str(tmp_path / "k"))
    for name in NAMES:
        path = tmp_path / "k" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert str(path) in output
        assert path.read_text().strip() not in output
    again = CliRunner().invoke(keys, ["generate", "--out", str(tmp_path / "k")])
    assert again.exit_code == 1
    assert "not overwriting" in again.output


def test_generated_keys_work_with_an_independent_jwt_implementation() -> None:
    values = parse_env(generate())
    private_pem = base64.b64decode(values["WORKER_RUNS_PRIVATE_KEY"])
    public_pem = base64.b64decode(values["WORKER_LIGHTNING_PUBLIC_KEY"])
    private, public = (
        load_private_key(values["WORKER_RUNS_PRIVATE_KEY"]),
        load_public_key(values["WORKER_LIGHTNING_PUBLIC_KEY"]),
    )

    # our run token, verified by joserfc with only the generated public key
    token = mint_run_token(private, "r-1", now=NOW, run_timeout=300)
    claims = jose_jwt.decode(token, RSAKey.import_key(public_pem), ["RS256"]).claims
    assert (claims["id"], claims["iss"]) == ("r-1", "Lightning")

    # joserfc's token, signed with the generated private key, verified by us
    theirs = jose_jwt.encode(
        {"alg": "RS256"},
        {"id": "r-1", "iss": "Lightning", "nbf": int(NOW), "exp": int(NOW) + 60},
        RSAKey.import_key(private_pem),
        ["RS256"],
    )
    assert verify_run_token(theirs, public, run_id="r-1", now=NOW).id == "r-1"

    # the worker secret, used verbatim as the HMAC key on both sides
    secret = values["WORKER_SECRET"]
    jose_secret = OctKey.import_key(secret.encode())
    ours = jose_jwt.decode(mint_worker_token(secret, "w", now=NOW), jose_secret, ["HS256"])
    assert ours.claims["worker_id"] == "w"
    claims_in = {"worker_id": "w2", "iat": int(NOW), "iss": "urn:openfn:worker"}
    theirs = jose_jwt.encode({"alg": "HS256"}, claims_in, jose_secret, ["HS256"])
    assert verify_worker_token(theirs, secret, now=NOW).worker_id == "w2"
