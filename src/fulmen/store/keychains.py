"""Keychain credentials (issue 19): one workflow serving many tenants.

A keychain belongs to a project and has a name, a JSONPath ``path`` into a run's input (as
its worker gets it: ``$.data.site_id`` for a webhook's body), entries that map a value found
there to one of the project's credentials, and an optional default credential. A job names a
keychain where it would name a credential.

*The shape.* Lightning matches the value against an ``external_id`` set on each credential;
here the keychain lists its values itself (``{"site-a": "cred-a", ...}``): everything that
decides a choice is on one page, a credential can serve several values or keychains, and a
credential's own form does not grow a field that means something only to keychains.

*When.* Each keychain of a run chooses when the run is made (``choose_for_run``, called by
``newruns.insert_run``, the one place every kind of run is made): its input is known then and
never changes. Lightning chooses when the worker fetches the keychain; choosing earlier fixes
the choice before any worker holds the run, shows it on the run while it is still queued, and
fails a run whose keychain chooses nothing at once, before it reaches a worker. A retry or
rerun is a new run, so it chooses again with the keychain as it is then.

*What follows from the record.* The choice is stored on the run (``run_keychains``: the
keychain, its path, the credential and the value that matched, never a credential's value).
From then on the run's jobs name the chosen credential as if the workflow had named it:
:func:`run_jobs` gives them so both to the plan a worker fetches (reads.get_plan) and to the
check every credential fetch passes (credentials._check_run_uses). So a worker sees, and may
fetch, the chosen credential only, and the run's scrubber (coordinator/channels/secrets.py),
which reads the plan, masks its value, with no special case anywhere else.

*Matching.* The first value at the path (as Lightning's ``jsonb_path_query_first``), as text:
a string as it is, a number or boolean as its JSON text (``42``, ``true``); an object, a list,
null or nothing matches no entry, and the default (if any) is taken.

*The error of a run that chose nothing* names the keychain and its path and, when the value
there is a string, number or boolean, that value (cut at 100 characters): it is the value the
project chose to select by, the one recorded when it does match, and the one the user must add
an entry for. Of an object or a list only its kind is said: it may hold anything of the input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import orjson

from fulmen.errors import ConflictError, InputError, NotFoundError
from fulmen.jsonpath import PathError, check, find
from fulmen.store.db import Row, Tx, loads_or_none
from fulmen.store.models.dataclips import DataclipType
from fulmen.store.models.keychains import KeychainChoice, KeychainInfo, NewKeychain

__all__ = [
    "ERROR_TYPE",
    "check_project_keychains",
    "choose_for_run",
    "credential_keychains",
    "delete_keychain",
    "get_keychain",
    "list_keychains",
    "put_keychain",
    "run_choices",
    "run_jobs",
]

#: The ``error_type`` of a run made failed because a keychain chose no credential (the name a
#: worker gives a credential that cannot be had).
ERROR_TYPE: Final = "CredentialError"
MAX_NAME: Final = 255
MAX_PATH: Final = 500
MAX_VALUE: Final = 255
MAX_ENTRIES: Final = 1000
#: Longest value quoted in a failed run's error.
MAX_SHOWN: Final = 100


async def put_keychain(tx: Tx, keychain: NewKeychain, now: datetime) -> KeychainInfo:
    """Create the keychain, or replace its name, path, entries and default. InputError for a
    bad name, path or value, or a credential that is not the project's (422); ConflictError for
    a name another keychain of the project has, or an id another project has."""
    _check(keychain)
    credential_ids = sorted(
        {*keychain.entries.values(), *filter(None, [keychain.default_credential_id])}
    )
    found = {
        row["id"]
        for row in await tx.fetchall(
            "project_credentials", {"project_id": keychain.project_id, "ids": credential_ids}
        )
    }
    if keychain.default_credential_id and keychain.default_credential_id not in found:
        raise InputError(
            f"keychain {keychain.name!r}: the default credential "
            f"{keychain.default_credential_id} is not a credential of project "
            f"{keychain.project_id}",
            code="unknown_credential",
            field="default_credential_id",
        )
    for value, credential_id in keychain.entries.items():
        if credential_id not in found:
            raise InputError(
                f"keychain {keychain.name!r}: the credential {credential_id} of value "
                f"{value!r} is not a credential of project {keychain.project_id}",
                code="unknown_credential",
                field=f"entries.{value}",
            )
    named = await tx.fetchone(
        "keychain_named",
        {"project_id": keychain.project_id, "name": keychain.name, "id": keychain.id},
    )
    if named is not None:
        raise ConflictError(
            f"project {keychain.project_id} already has a keychain named {keychain.name!r}",
            field="name",
        )
    row = await tx.fetchone(
        "upsert_keychain",
        {
            "id": keychain.id,
            "project_id": keychain.project_id,
            "name": keychain.name,
            "path": keychain.path,
            "default_credential_id": keychain.default_credential_id,
            "now": now,
        },
    )
    if row is None:
        raise ConflictError(f"keychain {keychain.id} belongs to another project", field="id")
    await tx.execute("delete_keychain_entries", {"id": keychain.id})
    for value, credential_id in sorted(keychain.entries.items()):
        await tx.execute(
            "insert_keychain_entry",
            {
                "keychain_id": keychain.id,
                "project_id": keychain.project_id,
                "value": value,
                "credential_id": credential_id,
            },
        )
    return await _info(tx, row)


async def get_keychain(tx: Tx, keychain_id: str) -> KeychainInfo:
    row = await tx.fetchone("get_keychain", {"id": keychain_id})
    if row is None:
        raise NotFoundError(f"keychain {keychain_id} does not exist", field="id")
    return await _info(tx, row)


async def list_keychains(tx: Tx, project_id: str) -> list[KeychainInfo]:
    rows = await tx.fetchall("list_keychains", {"project_id": project_id})
    return [await _info(tx, row) for row in rows]


async def delete_keychain(tx: Tx, keychain_id: str) -> None:
    users = [row["id"] for row in await tx.fetchall("keychain_users", {"id": keychain_id})]
    if users:
        raise ConflictError(
            f"keychain {keychain_id} is used by job {', '.join(users)}; change those jobs first",
            field="id",
        )
    if not await tx.execute("delete_keychain", {"id": keychain_id}):
        raise NotFoundError(f"keychain {keychain_id} does not exist", field="id")


async def credential_keychains(tx: Tx, credential_id: str) -> list[str]:
    """A few of the keychains that can choose the credential (which then may not go)."""
    rows = await tx.fetchall("credential_keychains", {"id": credential_id})
    return [row["id"] for row in rows]


async def check_project_keychains(tx: Tx, project_id: str, keychain_ids: Iterable[str]) -> None:
    """NotFoundError unless every id names a keychain of the project (a workflow's save)."""
    wanted = sorted(set(keychain_ids))
    if not wanted:
        return
    rows = await tx.fetchall("project_keychains", {"project_id": project_id, "ids": wanted})
    found = {row["id"] for row in rows}
    missing = [keychain_id for keychain_id in wanted if keychain_id not in found]
    if missing:
        raise NotFoundError(
            f"keychain {missing[0]} is not a keychain of project {project_id}",
            field="keychain_id",
        )


async def choose_for_run(
    tx: Tx,
    run_id: str,
    project_id: str,
    jobs: Sequence[Mapping[str, Any]],
    dataclip_id: str | None,
    now: datetime,
) -> bool:
    """Record what each keychain the ``jobs`` name chooses for the new run ``run_id``; if one
    chooses nothing, make the run failed (``exception``, :data:`ERROR_TYPE`) with a message
    naming the keychain and its path (the module's docstring says what else it shows), and
    say so (True)."""
    wanted = list(dict.fromkeys(str(job["keychain_id"]) for job in jobs if job.get("keychain_id")))
    if not wanted:
        return False
    document = await _input(tx, dataclip_id)
    failures: list[str] = []
    for keychain_id in wanted:
        choice, failure = await _choose(tx, keychain_id, project_id, document)
        await tx.execute(
            "insert_run_keychain",
            {
                "run_id": run_id,
                "keychain_id": choice.keychain_id,
                "keychain_name": choice.keychain_name,
                "path": choice.path,
                "credential_id": choice.credential_id,
                "matched": choice.matched,
            },
        )
        if failure is not None:
            failures.append(failure)
    if failures:
        await tx.execute(
            "fail_new_run",
            {
                "id": run_id,
                "now": now,
                "error_type": ERROR_TYPE,
                "error_message": "; ".join(failures),
            },
        )
    return bool(failures)


async def run_choices(tx: Tx, run_id: str) -> list[KeychainChoice]:
    rows = await tx.fetchall("run_keychains", {"run_id": run_id})
    return [_choice(row) for row in rows]


async def run_jobs(
    tx: Tx, run_id: str, jobs: Sequence[Mapping[str, Any]]
) -> Sequence[Mapping[str, Any]]:
    """The run's snapshot ``jobs`` as the run uses them: a job that names a keychain names
    the credential the keychain chose for this run instead (none, if it chose none). Most
    runs name none: their jobs come back as they are, on the way of every plan a worker
    fetches."""
    if not any(job.get("keychain_id") for job in jobs):
        return jobs
    chosen = {choice.keychain_id: choice.credential_id for choice in await run_choices(tx, run_id)}
    return [
        {**job, "keychain_id": None, "credential_id": chosen.get(str(job["keychain_id"]))}
        if job.get("keychain_id")
        else dict(job)
        for job in jobs
    ]


# -- helpers -----------------------------------------------------------------------------


def _check(keychain: NewKeychain) -> None:
    if not keychain.name.strip() or len(keychain.name) > MAX_NAME:
        raise InputError(
            f"a keychain's name must be 1 to {MAX_NAME} characters", code="bad_name", field="name"
        )
    path = keychain.path.strip()
    if not path.startswith("$") or len(path) > MAX_PATH:
        raise InputError(
            f"keychain {keychain.name!r}: the path must be a JSONPath starting with $ "
            f"(at most {MAX_PATH} characters), such as $.data.site_id",
            code="bad_path",
            field="path",
        )
    try:
        check(path)
    except PathError as error:
        raise InputError(
            f"keychain {keychain.name!r}: {error}; a path names keys and indexes, such as "
            "$.data.site_id or $.data.sites[0]['id']",
            code="bad_path",
            field="path",
        ) from error
    if len(keychain.entries) > MAX_ENTRIES:
        raise InputError(
            f"keychain {keychain.name!r}: at most {MAX_ENTRIES} entries",
            code="too_many_entries",
            field="entries",
        )
    for value in keychain.entries:
        if not value or len(value) > MAX_VALUE:
            raise InputError(
                f"keychain {keychain.name!r}: a value must be 1 to {MAX_VALUE} characters",
                code="bad_value",
                field="entries",
            )


async def _input(tx: Tx, dataclip_id: str | None) -> Any:
    """The run's input as its worker will get it (channels/fetched.py: run_input)."""
    if dataclip_id is None:
        return None
    row = await tx.fetchone("get_dataclip", {"id": dataclip_id})
    if row is None or row["wiped_at"] is not None or row["body"] is None:
        return None
    body = loads_or_none(row["body"])
    if DataclipType(row["type"]) is DataclipType.HTTP_REQUEST:
        return {"data": body, "request": loads_or_none(row["request"])}
    return body


async def _choose(
    tx: Tx, keychain_id: str, project_id: str, document: Any
) -> tuple[KeychainChoice, str | None]:
    row = await tx.fetchone("get_keychain", {"id": keychain_id})
    if row is None or row["project_id"] != project_id:  # gone since the snapshot was saved
        gone = KeychainChoice(keychain_id, "", "", None, None)
        return gone, f"keychain {keychain_id} no longer exists, so no credential was chosen"
    found = find(row["path"], document)
    value = found[0] if found else None
    text = _as_text(value)
    entries = {
        r["value"]: r["credential_id"]
        for r in await tx.fetchall("keychain_entries", {"id": keychain_id})
    }
    if text is not None and text in entries:
        return KeychainChoice(keychain_id, row["name"], row["path"], entries[text], text), None
    default = row["default_credential_id"]
    choice = KeychainChoice(keychain_id, row["name"], row["path"], default, None)
    if default is not None:
        return choice, None
    return choice, (
        f"keychain {row['name']!r} chose no credential: {_described(found, value, text)} at "
        f"{row['path']} matches none of its values and it has no default credential"
    )


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return orjson.dumps(value).decode()
    return None


def _described(found: list[Any], value: Any, text: str | None) -> str:
    if not found:
        return "nothing"
    if text is not None:
        shown = text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "…"
        return f"the value {shown!r}"
    return "null" if value is None else f"an {'object' if isinstance(value, dict) else 'array'}"


def _choice(row: Row) -> KeychainChoice:
    return KeychainChoice(
        keychain_id=row["keychain_id"],
        keychain_name=row["keychain_name"],
        path=row["path"],
        credential_id=row["credential_id"],
        matched=row["matched"],
    )


async def _info(tx: Tx, row: Row) -> KeychainInfo:
    entries = await tx.fetchall("keychain_entries", {"id": row["id"]})
    return KeychainInfo(
        id=row["id"],
        project_id=row["project_id"],
        name=row["name"],
        path=row["path"],
        entries={entry["value"]: entry["credential_id"] for entry in entries},
        default_credential_id=row["default_credential_id"],
        inserted_at=tx.time(row["inserted_at"]),
        updated_at=tx.time(row["updated_at"]),
    )
