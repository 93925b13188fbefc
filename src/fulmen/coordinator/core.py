"""What every part of the coordinator shares: the store, the keys, the hub, the clock.

Built once by ``app.build_coordinator`` from the settings and passed to each part (STYLE.md
P13); nothing here reads the environment or holds module-level state.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from fulmen import keys as keyring
from fulmen.clock import Clock
from fulmen.config import PRIVATE_KEY_VARIABLES, SECRET_VARIABLES, CoordinatorSettings, require
from fulmen.coordinator.hub import Hub
from fulmen.coordinator.memory import RunMemories
from fulmen.coordinator.metrics import Metrics
from fulmen.coordinator.oauth2_refresh import OAuth2Tokens
from fulmen.coordinator.outbound_http import Outbound
from fulmen.coordinator.registry import NpmRegistry
from fulmen.coordinator.run_tokens import RunTokens
from fulmen.errors import AdaptorError, ConfigError
from fulmen.outbound import Policy
from fulmen.packages.pypi import PythonRepo, find_uv
from fulmen.plan import Options
from fulmen.store import Store
from fulmen.store.files import open_private, private_dir, warn_if_loose

__all__ = ["CREDENTIAL_KEY_FILE", "Coordinator", "Keys", "credential_key", "database_url"]

log = logging.getLogger(__name__)

CREDENTIAL_KEY_FILE = "credential.key"
_KEY_BYTES = 32


@dataclass(frozen=True)
class Keys:
    """The worker secret (checks worker tokens) and the run-token key pair (§2, §3)."""

    worker_secret: str = field(repr=False)
    private_key: RSAPrivateKey = field(repr=False)

    @property
    def public_key(self) -> RSAPublicKey:
        return self.private_key.public_key()

    @classmethod
    def from_settings(cls, settings: CoordinatorSettings) -> Keys:
        """Raises ConfigError naming the missing or malformed variable."""
        secret = require(settings.secret, SECRET_VARIABLES)
        private = require(settings.private_key, PRIVATE_KEY_VARIABLES)
        return cls(
            keyring.load_worker_secret(secret.value, variable=secret.variable),
            keyring.load_private_key(private.value, variable=private.variable),
        )


@dataclass
class Coordinator:
    settings: CoordinatorSettings
    store: Store
    keys: Keys
    clock: Clock
    hub: Hub
    metrics: Metrics
    memories: RunMemories = field(default_factory=RunMemories)
    run_tokens: RunTokens = field(init=False)
    #: Where JavaScript jobs' adaptors are resolved when a workflow is saved (issue 15).
    registry: NpmRegistry = field(init=False)
    #: Where Python jobs' packages are resolved when a workflow is saved (issue 16): uv, asked
    #: about ``FULMEN_PYTHON_INDEX``; it writes only a short-lived file under
    #: ``<data dir>/python/``, and installs nothing.
    python_repo: PythonRepo = field(init=False)
    #: OAuth2 credentials' tokens, refreshed before a run gets them (issue 19).
    oauth2: OAuth2Tokens = field(init=False)
    #: Where requests to URLs a project admin chose may go (``FULMEN_OUTBOUND_ALLOW``).
    outbound: Outbound = field(init=False)

    def __post_init__(self) -> None:
        self.run_tokens = RunTokens(self.keys.private_key)
        self.registry = NpmRegistry(
            self.settings.npm_registry, timeout=self.settings.npm_registry_timeout
        )
        try:
            uv = find_uv()
        except AdaptorError:
            uv = "uv"  # not installed (it comes with Fulmen): only saves that need it fail
        self.python_repo = PythonRepo(
            Path(self.settings.data_dir).resolve(), index=self.settings.python_index, uv=uv
        )
        self.outbound = Outbound(Policy.of(self.settings.outbound_allow))
        self.oauth2 = OAuth2Tokens(self.store, self.clock, self.outbound)

    def now(self) -> float:
        """Seconds since the epoch, from the coordinator's clock (tokens want this form)."""
        return self.clock.now().timestamp()

    def run_options(self) -> Options:
        """The options of a new run (§6.1): Lightning always sends a run timeout."""
        return Options(run_timeout_ms=int(self.settings.max_run_duration * 1000))


def database_url(settings: CoordinatorSettings) -> str:
    """``FULMEN_DATABASE_URL``, else a SQLite file in the data directory."""
    if settings.database_url:
        return settings.database_url
    return f"sqlite:///{Path(settings.data_dir).resolve() / 'fulmen.db'}"


def credential_key(settings: CoordinatorSettings) -> bytes | None:
    """The 32-byte credential key: from ``FULMEN_CREDENTIAL_KEY`` (base64), else the file
    ``FULMEN_CREDENTIAL_KEY_FILE`` or ``<data dir>/credential.key``.

    With a SQLite store and no key anywhere, a key is generated into the data directory's file
    (mode 0600, in a 0700 directory, whatever the umask), so that one command runs the whole
    system. A key file that others may read is reported. With PostgreSQL it is not: every
    coordinator must share the operator's key, so credentials are refused until one is set.

    Raises:
        ConfigError: a key that is not base64 of 32 bytes, naming where it came from.
    """
    if settings.credential_key is not None:
        return _decode_key(settings.credential_key.value, settings.credential_key.variable)
    path = Path(settings.credential_key_file or Path(settings.data_dir) / CREDENTIAL_KEY_FILE)
    if path.exists():
        warn_if_loose("the credential key", [path])
        return _decode_key(path.read_text(encoding="ascii", errors="replace"), str(path))
    if settings.credential_key_file or not database_url(settings).startswith("sqlite:"):
        log.warning("no credential key (FULMEN_CREDENTIAL_KEY): credentials are refused")
        return None
    key = os.urandom(_KEY_BYTES)
    private_dir(path.parent)
    fd = open_private(path, os.O_WRONLY, exclusive=True)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(base64.b64encode(key).decode() + "\n")
    log.info("generated a credential key in %s; back it up with the database", path)
    return key


def _decode_key(value: str, source: str) -> bytes:
    try:
        key = base64.b64decode(value.strip().strip('"'), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{source} is not base64", code="not_base64") from None
    if len(key) != _KEY_BYTES:
        raise ConfigError(
            f"{source} must hold base64 of {_KEY_BYTES} bytes, not {len(key)}", code="bad_key"
        )
    return key
