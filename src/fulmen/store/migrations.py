"""Which schema files a database still needs, and whether it may be opened at all.

Pure: each dialect reads its ``schema_version`` rows, asks :func:`plan` what to do, and does
it in its own transaction (sqlite.py, postgres.py). One decision for both dialects, so that
SQLite and PostgreSQL refuse the same databases with the same words.

Two databases are refused rather than "brought up to date":

* **A schema file changed after it was applied.** Each applied file's SHA-256 is recorded;
  a file edited since (a migration rewritten in place instead of a new one added) would leave
  databases made before and after the edit with different schemas under one version number.
  Rows recorded before checksums existed get theirs on the next open (trust on first use).
* **A schema newer than the code.** An older Fulmen started on a database a newer one
  migrated would run queries written for another schema; it stops and says to upgrade.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from fulmen.errors import StoreError

__all__ = ["Applied", "MigrationPlan", "SchemaFile", "plan"]


class SchemaFile(NamedTuple):
    """One numbered file of ``sql/<dialect>/schema/``."""

    version: int
    name: str
    script: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.script.encode("utf-8")).hexdigest()


class Applied(NamedTuple):
    """One ``schema_version`` row: a file applied to this database."""

    version: int
    name: str
    checksum: str | None


@dataclass(frozen=True)
class MigrationPlan:
    #: Files to apply, in order, each recorded with its checksum.
    apply: tuple[SchemaFile, ...]
    #: Applied files whose row has no checksum yet: record the file's.
    record_checksums: tuple[SchemaFile, ...]


def plan(applied: Sequence[Applied], files: Sequence[SchemaFile], *, where: str) -> MigrationPlan:
    """What to do to bring the database at ``where`` to ``files``.

    Raises:
        StoreError: ``schema_newer`` when the database has a version the code does not know;
            ``schema_changed`` when an applied file's name or checksum differs from the file.
    """
    known = {file.version: file for file in files}
    newest = max(known, default=0)
    for row in applied:
        if row.version > newest:
            raise StoreError(
                f"the database {where} has schema version {row.version} ({row.name}), newer "
                f"than this Fulmen knows (up to {newest}): upgrade Fulmen to open it",
                code="schema_newer",
            )
        file = known[row.version]
        if row.name != file.name or (row.checksum is not None and row.checksum != file.checksum):
            raise StoreError(
                f"the schema file {file.name} differs from the one applied to the database "
                f"{where} as version {row.version} ({row.name}): a file is never edited once "
                "released; restore it and put the change in a new numbered file",
                code="schema_changed",
            )
    done = {row.version for row in applied}
    return MigrationPlan(
        apply=tuple(file for file in files if file.version not in done),
        record_checksums=tuple(known[row.version] for row in applied if row.checksum is None),
    )
