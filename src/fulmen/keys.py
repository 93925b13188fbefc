"""The keys of the two token layers: generating them and reading them from configuration.

Three values, as Lightning names them (spec §3.4):

=============================  ================================  ==========================
variable                       what                              who needs it
=============================  ================================  ==========================
``WORKER_SECRET``              256-bit shared secret (HS256)     coordinator and workers
``WORKER_RUNS_PRIVATE_KEY``    RSA private key, base64 of a PEM  the coordinator only
``WORKER_LIGHTNING_PUBLIC_KEY``  its public key, base64 of a PEM   workers
=============================  ================================  ==========================

Which variable a value came from (current or historical name) is ``fulmen.config``'s business;
this module is told the name and uses it in every message, and never puts a value in one.

Generation [VARIES in Lightning's own tooling, §3.4]: the secret is the padded base64 of 32
random bytes, as ``mix lightning.gen_worker_keys`` makes it (the 44-character string itself is
the HMAC key). The key pair is RSA 2048 (e 65537) written as PKCS#8 and SPKI PEMs: the formats
every consumer reads (Lightning's JOSE, ws-worker's ``crypto.createPublicKey``, Python), where
Lightning's newest task writes PKCS#1. PEMs are base64-encoded *with* padding, as Lightning's
setup script does; Lightning decodes with ``padding: false``, which accepts both.

Loading accepts everything those tools produced: padded or unpadded base64 (wrapped or not),
the PEM itself unencoded, PKCS#1 or PKCS#8 private keys, PKCS#1 or SPKI public keys, and
surrounding quotes from a pasted ``NAME="value"`` line.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from fulmen.errors import ConfigError

__all__ = [
    "MIN_RSA_BITS",
    "MIN_SECRET_BYTES",
    "NAMINGS",
    "PRIVATE_KEY",
    "PUBLIC_KEY",
    "WORKER_SECRET",
    "GeneratedKeys",
    "generate",
    "load_private_key",
    "load_public_key",
    "load_worker_secret",
    "render_env",
    "render_json",
    "write_files",
]

WORKER_SECRET: Final = "WORKER_SECRET"
PRIVATE_KEY: Final = "WORKER_RUNS_PRIVATE_KEY"
PUBLIC_KEY: Final = "WORKER_LIGHTNING_PUBLIC_KEY"

MIN_SECRET_BYTES: Final = 32
"""RFC 7518 §3.2: an HS256 key must be at least as long as the hash, 256 bits."""
MIN_RSA_BITS: Final = 2048

#: The three variable names, in order secret, private key, public key. ``current`` is what
#: Lightning and ws-worker read today; ``seed`` is what OpenFn's original Workers page (and
#: ``mix lightning.gen_worker_keys`` before Lightning 2.0) used. Fulmen reads both (§3.4).
NAMINGS: Final = {
    "current": (WORKER_SECRET, PRIVATE_KEY, PUBLIC_KEY),
    "seed": (WORKER_SECRET, "ATTEMPTS_PRIVATE_KEY", "LIGHTNING_PUBLIC_KEY"),
}


@dataclass(frozen=True)
class GeneratedKeys:
    """The three values, ready for the environment; ``repr`` shows none of them."""

    worker_secret: str = field(repr=False)
    private_key: str = field(repr=False)
    public_key: str = field(repr=False)

    def as_env(self, naming: str = "current") -> dict[str, str]:
        secret, private, public = NAMINGS[naming]
        return {secret: self.worker_secret, private: self.private_key, public: self.public_key}


def generate(*, bits: int = MIN_RSA_BITS) -> GeneratedKeys:
    """A fresh secret and key pair."""
    secret = base64.b64encode(secrets.token_bytes(MIN_SECRET_BYTES)).decode()
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return GeneratedKeys(secret, _b64(private_pem), _b64(public_pem))


def _b64(pem: bytes) -> str:
    return base64.b64encode(pem).decode()


# -- rendering and writing ------------------------------------------------------------------


def _note(naming: str) -> str:
    secret, private, public = NAMINGS[naming]
    return (
        f"# Fulmen / Lightning worker keys. Keep {secret} and {private} secret.\n"
        f"#   coordinator (or Lightning): {secret}, {private}\n"
        f"#   every worker:               {secret}, {public}\n"
    )


def _needed_by(naming: str) -> dict[str, list[str]]:
    secret, private, public = NAMINGS[naming]
    return {"coordinator": [secret, private], "worker": [secret, public]}


def render_env(keys: GeneratedKeys, naming: str = "current") -> str:
    """``NAME="value"`` lines, usable as a ``.env`` file or by a shell, after a short note."""
    lines = [f'{name}="{value}"' for name, value in keys.as_env(naming).items()]
    return _note(naming) + "\n".join(lines) + "\n"


def render_json(keys: GeneratedKeys, naming: str = "current") -> str:
    document = {**keys.as_env(naming), "needed_by": _needed_by(naming)}
    return json.dumps(document, indent=2) + "\n"


def write_files(keys: GeneratedKeys, directory: Path, naming: str = "current") -> list[Path]:
    """Write each value to ``directory/<VARIABLE>``, readable by the owner only (0600).

    Existing files are never overwritten, so that a second run cannot replace keys in use.

    Raises:
        ConfigError: ``file_exists`` or ``cannot_write``, naming the path.
    """
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create {directory}: {exc.strerror}", code="cannot_write"
        ) from exc
    written = []
    for name, value in keys.as_env(naming).items():
        path = directory / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(f"{path} exists; not overwriting it", code="file_exists") from None
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {exc.strerror}", code="cannot_write") from exc
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)  # whatever the umask
            handle.write(value + "\n")
        written.append(path)
    return written


# -- loading --------------------------------------------------------------------------------


def load_worker_secret(value: str, *, variable: str = WORKER_SECRET) -> str:
    """Check a worker secret; it is returned unchanged, as both sides use it verbatim.

    Raises:
        ConfigError: ``missing`` if empty, ``short_secret`` if under 256 bits.
    """
    if not value:
        raise ConfigError(f"{variable} is empty", code="missing")
    if len(value.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"{variable} is shorter than {MIN_SECRET_BYTES} bytes (256 bits); "
            "make one with `fulmen keys generate`",
            code="short_secret",
        )
    return value


def load_private_key(value: str, *, variable: str = PRIVATE_KEY) -> RSAPrivateKey:
    """The coordinator's RSA signing key from a configuration value.

    Raises:
        ConfigError: ``not_base64``, ``not_pem``, ``public_not_private``, ``encrypted_key``,
            ``not_rsa`` or ``weak_key``, naming ``variable``.
    """
    pem = _pem(value, variable)
    if b"PUBLIC KEY-----" in pem:
        raise ConfigError(
            f"{variable} holds a public key; the private key belongs here",
            code="public_not_private",
        )
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise ConfigError(
            f"{variable} is encrypted; give it unencrypted", code="encrypted_key"
        ) from None
    except (ValueError, binascii.Error):
        raise ConfigError(f"{variable} does not hold a readable PEM key", code="not_pem") from None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError(f"{variable} is not an RSA key", code="not_rsa")
    _check_size(key.key_size, variable)
    return key


def load_public_key(value: str, *, variable: str = PUBLIC_KEY) -> RSAPublicKey:
    """The RSA key that verifies run tokens, from a configuration value.

    A private key is refused here even though its public half could be derived: a worker
    holding the signing key could mint run tokens, which is what the key pair prevents.

    Raises:
        ConfigError: ``not_base64``, ``not_pem``, ``private_not_public``, ``not_rsa`` or
            ``weak_key``, naming ``variable``.
    """
    pem = _pem(value, variable)
    if b"PRIVATE KEY-----" in pem:
        raise ConfigError(
            f"{variable} holds a private key; give workers only the public key",
            code="private_not_public",
        )
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, binascii.Error):
        raise ConfigError(f"{variable} does not hold a readable PEM key", code="not_pem") from None
    if not isinstance(key, RSAPublicKey):
        raise ConfigError(f"{variable} is not an RSA key", code="not_rsa")
    _check_size(key.key_size, variable)
    return key


def _check_size(bits: int, variable: str) -> None:
    if bits < MIN_RSA_BITS:
        raise ConfigError(
            f"{variable} is a {bits}-bit RSA key; at least {MIN_RSA_BITS} bits are needed",
            code="weak_key",
        )


def _pem(value: str, variable: str) -> bytes:
    """The PEM bytes in a value: base64 of a PEM (padding optional), or a PEM as-is."""
    text = value.strip().strip("\"'").strip()
    if text.startswith("-----BEGIN"):
        return text.encode()
    compact = "".join(text.split())
    if not compact:
        raise ConfigError(f"{variable} is empty", code="missing")
    try:
        decoded = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{variable} is not base64-encoded PEM", code="not_base64") from None
    if b"-----BEGIN " not in decoded:
        raise ConfigError(f"{variable} is base64, but not of a PEM key", code="not_pem")
    return decoded
