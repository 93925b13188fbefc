"""The data directory of ``fulmen up``: everything the system needs, made on first start.

Layout (the directory is 0700, every secret file 0600, and nothing is ever overwritten)::

    .fulmen/
      keys/WORKER_SECRET                  the worker secret (HS256), as `fulmen keys generate`
      keys/WORKER_RUNS_PRIVATE_KEY        the coordinator's run-token key (RSA, PEM in base64)
      keys/WORKER_LIGHTNING_PUBLIC_KEY    its public half, for the worker
      credential.key                      seals credentials in the store (the coordinator's)
      api-token                           a REST API token: deploy's, and the first admin's
      fulmen.db                           the SQLite store
      runner/                             the runner's state (its master key is its own)
      runner-api-token                    the runner API's bearer token
      examples-loaded                     written once the example project is deployed

The store's first user, an instance admin (``admin@localhost``, or ``FULMEN_ADMIN_EMAIL``),
is made on first start with a random password that ``fulmen up`` prints once
(:func:`first_admin`); it takes over the API token above, which keeps working as that admin's.
Nothing else keeps the password: a lost one is replaced with ``fulmen users set-password``.

The secrets reach the children through their environment (the variables ``fulmen server`` and
``fulmen worker`` read, as in any deployment); the job sandboxes are started with an empty
environment, so no job sees them.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from fulmen import keys as keyring
from fulmen.config import CoordinatorSettings
from fulmen.coordinator import audit
from fulmen.coordinator.api.auth import mint
from fulmen.coordinator.core import credential_key, database_url
from fulmen.coordinator.passwords import hash_password
from fulmen.errors import ConfigError
from fulmen.store import NewUser, Target, open_store

__all__ = ["DataDir", "first_admin", "prepare"]

KEYS: Final = "keys"
API_TOKEN: Final = "api-token"
RUNNER_TOKEN: Final = "runner-api-token"
EXAMPLES_LOADED: Final = "examples-loaded"
#: Random bytes in the first admin's password (24 characters of URL-safe base64).
ADMIN_PASSWORD_BYTES: Final = 18


@dataclass(frozen=True)
class DataDir:
    """A ready data directory: where things are, and the secrets the children need."""

    path: Path
    #: True when this start made the store (and so its API token).
    first_start: bool
    worker_secret: str = field(repr=False)
    private_key: str = field(repr=False)
    public_key: str = field(repr=False)
    api_token: str = field(repr=False)

    @property
    def api_token_file(self) -> Path:
        return self.path / API_TOKEN

    @property
    def runner_token_file(self) -> Path:
        return self.path / RUNNER_TOKEN

    @property
    def runner_state(self) -> Path:
        return self.path / "runner"

    @property
    def examples_loaded(self) -> bool:
        return (self.path / EXAMPLES_LOADED).exists()

    def mark_examples_loaded(self, project_id: str) -> None:
        (self.path / EXAMPLES_LOADED).write_text(project_id + "\n", encoding="utf-8")

    def settings(self) -> CoordinatorSettings:
        return CoordinatorSettings(data_dir=str(self.path))


async def prepare(path: Path) -> DataDir:
    """Make whatever ``path`` lacks, then read it.

    Raises:
        ConfigError: a file that cannot be written or read, or keys only partly there.
    """
    path = path.resolve()
    _directory(path)
    _keys(path / KEYS)
    values = {
        name: _read(path / KEYS / name)
        for name in (keyring.WORKER_SECRET, keyring.PRIVATE_KEY, keyring.PUBLIC_KEY)
    }
    settings = CoordinatorSettings(data_dir=str(path))
    credential_key(settings)  # made now (0600), so that the first start makes every file
    token_file = path / API_TOKEN
    first = not token_file.exists()
    if first:
        token, row = mint("fulmen up")
        async with await open_store(database_url(settings)) as store:
            await store.put_api_token(row)
        write_secret(token_file, token)
    if not (path / RUNNER_TOKEN).exists():
        write_secret(path / RUNNER_TOKEN, secrets.token_urlsafe(32))
    _directory(path / "runner")
    return DataDir(
        path=path,
        first_start=first,
        worker_secret=values[keyring.WORKER_SECRET],
        private_key=values[keyring.PRIVATE_KEY],
        public_key=values[keyring.PUBLIC_KEY],
        api_token=_read(token_file),
    )


async def first_admin(data: DataDir, email: str) -> str | None:
    """On a store with no user yet, make ``email`` its first instance admin with a random
    password, and return the password (to print once); ``None`` when a user exists.

    Raises:
        InputError: ``email`` is not an address (``FULMEN_ADMIN_EMAIL``).
    """
    async with await open_store(database_url(data.settings())) as store:
        if await store.list_users():
            return None
        password = secrets.token_urlsafe(ADMIN_PASSWORD_BYTES)
        hashed = await hash_password(password)
        async with store.together():
            made = await store.create_user(
                NewUser(email, password_hash=hashed, instance_admin=True)
            )
            target = Target("user", made.id, made.email)
            after = audit.user_document(made)
            await audit.record(store, audit.command_line(), "user.created", target, after=after)
        return password


def write_secret(path: Path, value: str) -> None:
    """Write a new file readable by its owner only, whatever the umask."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}", code="cannot_write") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(value + "\n")


def _directory(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}", code="cannot_write") from exc


def _keys(folder: Path) -> None:
    names = (keyring.WORKER_SECRET, keyring.PRIVATE_KEY, keyring.PUBLIC_KEY)
    present = [name for name in names if (folder / name).exists()]
    if not present:
        keyring.write_files(keyring.generate(), folder)
    elif len(present) < len(names):
        missing = ", ".join(sorted(set(names) - set(present)))
        raise ConfigError(
            f"{folder} lacks {missing}; restore it, or remove the directory to start afresh",
            code="missing",
        )


def _read(path: Path) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", code="missing") from exc
    if not value:
        raise ConfigError(f"{path} is empty", code="missing")
    return value
