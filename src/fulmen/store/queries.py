"""Named SQL queries and numbered schema files, read from the package's ``sql/<dialect>/``.

Why a loader of our own rather than aiosql: the SQL stays in one readable file per dialect
either way (STYLE.md P7), but the store needs to own its transactions (``BEGIN IMMEDIATE`` on
SQLite, locks across statements on PostgreSQL) and each dialect keeps its driver's native
parameter style, so what is left for a library to do is the thirty lines below.

A query file is a sequence of blocks, each opened by a ``-- name: <name>`` line. Comment lines
right after it describe the query; the rest up to the next block is the statement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from fulmen.errors import ConfigError
from fulmen.store.migrations import SchemaFile

__all__ = ["DIALECTS", "STORE_SQL", "Query", "load_queries", "load_schema", "parse_queries"]

DIALECTS = ("sqlite", "postgres")

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$")
_SCHEMA_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    doc: str
    sql: str


def parse_queries(text: str, *, source: str = "<sql>") -> dict[str, Query]:
    """Split a query file into its named queries.

    Raises:
        ConfigError: a query name appears twice, or a block has no statement.
    """
    blocks: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        match = _NAME.match(line.strip())
        if match:
            blocks.append((match.group(1), []))
        elif blocks:
            blocks[-1][1].append(line)
    queries: dict[str, Query] = {}
    for name, lines in blocks:
        doc: list[str] = []
        while lines and lines[0].lstrip().startswith("--"):
            doc.append(lines.pop(0).strip().removeprefix("--").strip())
        sql = "\n".join(lines).strip().rstrip(";").strip()
        if name in queries:
            raise ConfigError(f"{source}: the query {name!r} is defined twice")
        if not sql:
            raise ConfigError(f"{source}: the query {name!r} has no statement")
        queries[name] = Query(name=name, doc=" ".join(doc), sql=sql)
    return queries


#: Whose SQL: the coordinator's store, unless a caller names its own package (the runner keeps
#: its state file with the same machinery, from ``fulmen/runner/sql/``).
STORE_SQL = "fulmen.store"


def load_queries(dialect: str, *, package: str = STORE_SQL) -> dict[str, Query]:
    """The named queries of ``<package>/sql/<dialect>/queries.sql``."""
    path = resources.files(package) / "sql" / dialect / "queries.sql"
    return parse_queries(path.read_text(encoding="utf-8"), source=f"{dialect}/queries.sql")


def load_schema(dialect: str, *, package: str = STORE_SQL) -> list[SchemaFile]:
    """The schema files of ``<package>/sql/<dialect>/schema/``, in order.

    Files are named ``NNNN_what.sql``; versions start at 1 and have no gaps, so that a store
    can tell which ones a database still needs.
    """
    folder = resources.files(package) / "sql" / dialect / "schema"
    found: list[SchemaFile] = []
    for entry in folder.iterdir():
        match = _SCHEMA_FILE.match(entry.name)
        if match:
            script = entry.read_text(encoding="utf-8")
            found.append(SchemaFile(int(match.group(1)), entry.name, script))
    found.sort()
    versions = [file.version for file in found]
    if versions != list(range(1, len(found) + 1)):
        raise ConfigError(f"{dialect} schema files must be numbered 0001, 0002, …: {versions}")
    return found
