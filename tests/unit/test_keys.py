"""Key generation and loading: every format Lightning's tooling produced is read; every
malformed value is one ConfigError naming the variable and never showing the value."""

from __future__ import annotations

import base64
import stat
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from hypothesis import given
from hypothesis import strategies as st

from fulmen.errors import ConfigError
from fulmen.keys import (
    MIN_SECRET_BYTES,
    GeneratedKeys,
    generate,
    load_private_key,
    load_public_key,
    load_worker_secret,
    render_env,
    render_json,
    write_files,
)

PEM = serialization.Encoding.PEM


@pytest.fixture(scope="module")
def generated() -> GeneratedKeys:
    return generate()


@pytest.fixture(scope="module")
def key() -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64(data: bytes, *, padded: bool = True) -> str:
    text = base64.b64encode(data).decode()
    return text if padded else text.rstrip("=")


def private_pem(key: RSAPrivateKey, fmt: serialization.PrivateFormat) -> bytes:
    return key.private_bytes(PEM, fmt, serialization.NoEncryption())


def public_pem(key: RSAPrivateKey, fmt: serialization.PublicFormat) -> bytes:
    return key.public_key().public_bytes(PEM, fmt)


# -- generation -------------------------------------------------------------------------------


def test_generated_values_have_lightnings_shapes(generated: GeneratedKeys) -> None:
    assert len(generated.worker_secret) == 44
    assert len(base64.b64decode(generated.worker_secret, validate=True)) == MIN_SECRET_BYTES
    private = base64.b64decode(generated.private_key, validate=True)
    public = base64.b64decode(generated.public_key, validate=True)
    assert private.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert public.startswith(b"-----BEGIN PUBLIC KEY-----")  # SPKI
    key = load_private_key(generated.private_key)
    assert key.key_size == 2048 and key.public_key().public_numbers().e == 65537
    assert (
        load_public_key(generated.public_key).public_numbers() == key.public_key().public_numbers()
    )
    assert load_worker_secret(generated.worker_secret) == generated.worker_secret


def test_generated_values_differ_each_time(generated: GeneratedKeys) -> None:
    again = generate()
    assert again.worker_secret != generated.worker_secret
    assert again.private_key != generated.private_key


def test_generated_keys_do_not_show_in_repr(generated: GeneratedKeys) -> None:
    text = repr(generated)
    for value in generated.as_env().values():
        assert value not in text


def test_env_rendering_is_a_dotenv_with_a_note(generated: GeneratedKeys) -> None:
    text = render_env(generated)
    notes = [line for line in text.splitlines() if line.startswith("#")]
    assert any("coordinator" in line and "WORKER_RUNS_PRIVATE_KEY" in line for line in notes)
    assert any("worker" in line and "WORKER_LIGHTNING_PUBLIC_KEY" in line for line in notes)
    values = dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert {k: v.strip('"') for k, v in values.items()} == generated.as_env()


def test_json_rendering(generated: GeneratedKeys) -> None:
    import json

    document = json.loads(render_json(generated))
    assert {k: document[k] for k in generated.as_env()} == generated.as_env()
    assert document["needed_by"]["worker"] == ["WORKER_SECRET", "WORKER_LIGHTNING_PUBLIC_KEY"]


def test_files_are_private_and_never_overwritten(generated: GeneratedKeys, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    paths = write_files(generated, out)
    assert sorted(p.name for p in paths) == sorted(generated.as_env())
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() == generated.as_env()[path.name] + "\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert load_private_key((out / "WORKER_RUNS_PRIVATE_KEY").read_text())
    with pytest.raises(ConfigError) as info:
        write_files(generate(), out)
    assert info.value.code == "file_exists"
    assert (out / "WORKER_SECRET").read_text().strip() == generated.worker_secret


# -- what loading accepts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL]
)
@pytest.mark.parametrize("padded", [True, False])
def test_private_keys_in_pkcs1_and_pkcs8_padded_or_not(
    key: RSAPrivateKey, fmt: serialization.PrivateFormat, padded: bool
) -> None:
    pem = private_pem(key, fmt)
    loaded = load_private_key(b64(pem, padded=padded), variable="WORKER_RUNS_PRIVATE_KEY")
    assert loaded.private_numbers() == key.private_numbers()


@pytest.mark.parametrize(
    "fmt", [serialization.PublicFormat.SubjectPublicKeyInfo, serialization.PublicFormat.PKCS1]
)
@pytest.mark.parametrize("padded", [True, False])
def test_public_keys_in_spki_and_pkcs1_padded_or_not(
    key: RSAPrivateKey, fmt: serialization.PublicFormat, padded: bool
) -> None:
    loaded = load_public_key(b64(public_pem(key, fmt), padded=padded))
    assert loaded.public_numbers() == key.public_key().public_numbers()


def test_loading_tolerates_wrapping_quotes_and_raw_pem(key: RSAPrivateKey) -> None:
    pem = private_pem(key, serialization.PrivateFormat.TraditionalOpenSSL)
    wrapped = "\n".join(textwrap.wrap(b64(pem), 76)) + "\n"  # what `base64` prints
    for value in (wrapped, f'"{b64(pem)}"', f"'{b64(pem, padded=False)}'\n", pem.decode()):
        assert load_private_key(value).private_numbers() == key.private_numbers()


# -- what loading refuses --------------------------------------------------------------------------


def ec_pems() -> tuple[bytes, bytes]:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    private = ec_key.private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = ec_key.public_key().public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def weak_pems() -> tuple[bytes, bytes]:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return private_pem(weak, serialization.PrivateFormat.PKCS8), public_pem(
        weak, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_malformed_private_keys(key: RSAPrivateKey) -> None:
    ec_private, _ = ec_pems()
    weak_private, _ = weak_pems()
    encrypted = key.private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    cases = {
        "not*base64!": "not_base64",
        "QUJDR": "not_base64",
        b64(b"just some bytes, no PEM"): "not_pem",
        b64(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"): "not_pem",
        b64(public_pem(key, serialization.PublicFormat.SubjectPublicKeyInfo)): "public_not_private",
        b64(public_pem(key, serialization.PublicFormat.PKCS1)): "public_not_private",
        b64(ec_private): "not_rsa",
        b64(weak_private): "weak_key",
        b64(encrypted): "encrypted_key",
        "  ": "missing",
    }
    for value, code in cases.items():
        with pytest.raises(ConfigError) as info:
            load_private_key(value, variable="ATTEMPTS_PRIVATE_KEY")
        assert info.value.code == code, value[:40]
        assert "ATTEMPTS_PRIVATE_KEY" in info.value.message
        assert not value.strip() or value.strip()[:16] not in info.value.message


def test_malformed_public_keys(key: RSAPrivateKey) -> None:
    _, ec_public = ec_pems()
    _, weak_public = weak_pems()
    cases = {
        "%%%": "not_base64",
        b64(b"hello"): "not_pem",
        b64(private_pem(key, serialization.PrivateFormat.PKCS8)): "private_not_public",
        b64(private_pem(key, serialization.PrivateFormat.TraditionalOpenSSL)): "private_not_public",
        b64(ec_public): "not_rsa",
        b64(weak_public): "weak_key",
        b64(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"): "not_pem",
    }
    for value, code in cases.items():
        with pytest.raises(ConfigError) as info:
            load_public_key(value, variable="LIGHTNING_PUBLIC_KEY")
        assert info.value.code == code, value[:40]
        assert "LIGHTNING_PUBLIC_KEY" in info.value.message
        assert value[:16] not in info.value.message


def test_worker_secrets() -> None:
    assert load_worker_secret("a" * 32) == "a" * 32
    assert load_worker_secret(' "quotes are part of it" ' + "x" * 10).startswith(" ")
    for value, code in (("", "missing"), ("abdefg", "short_secret"), ("é" * 15, "short_secret")):
        with pytest.raises(ConfigError) as info:
            load_worker_secret(value, variable="WORKER_SECRET")
        assert info.value.code == code
        assert "WORKER_SECRET" in info.value.message
        assert not value or value not in info.value.message


@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()))
def test_any_value_is_a_key_or_a_config_error(value: str) -> None:
    for load in (load_private_key, load_public_key, load_worker_secret):
        try:
            load(value)
        except ConfigError as error:
            assert error.code in LOAD_ERRORS


LOAD_ERRORS = {
    "missing", "short_secret", "not_base64", "not_pem", "public_not_private",
    "private_not_public", "encrypted_key", "not_rsa", "weak_key",
}  # fmt: skip
