"""Dataclips: stored JSON documents (inputs, step outputs), whose bodies may be wiped.

Wiping keeps the row (id, type, project, times) because runs and steps point at it; only the
body and request go, and ``wiped_at`` says when (issue 8's retention builds on this).
"""

from __future__ import annotations

from datetime import datetime
from uuid import uuid4

from fulmen.errors import NotFoundError
from fulmen.store.db import Row, Tx, dumps, loads_or_none, time_or_none, utf8_size
from fulmen.store.models.dataclips import Dataclip, DataclipType, NewDataclip

__all__ = ["get_dataclip", "insert_dataclip", "insert_wiped", "wipe_dataclip"]


async def insert_dataclip(tx: Tx, project_id: str, dataclip: NewDataclip, now: datetime) -> str:
    dataclip_id = dataclip.id or str(uuid4())
    body = dumps(dataclip.body)
    request = None if dataclip.request is None else dumps(dataclip.request)
    await tx.execute(
        "insert_dataclip",
        {
            "id": dataclip_id,
            "project_id": project_id,
            "type": DataclipType(dataclip.type),
            "body": body,
            "request": request,
            "body_bytes": utf8_size(body) + (0 if request is None else utf8_size(request)),
            "wiped_at": None,
            "now": now,
        },
    )
    return dataclip_id


async def insert_wiped(
    tx: Tx, project_id: str, dataclip_id: str, kind: DataclipType, now: datetime
) -> None:
    """A dataclip row without a body: the worker named an output it was told not to send."""
    await tx.execute(
        "insert_dataclip",
        {
            "id": dataclip_id,
            "project_id": project_id,
            "type": kind,
            "body": None,
            "request": None,
            "body_bytes": 0,
            "wiped_at": now,
            "now": now,
        },
    )


async def get_dataclip(tx: Tx, dataclip_id: str) -> Dataclip:
    row = await tx.fetchone("get_dataclip", {"id": dataclip_id})
    if row is None:
        raise NotFoundError(f"dataclip {dataclip_id} does not exist", field="id")
    return _dataclip(tx, row)


async def wipe_dataclip(tx: Tx, dataclip_id: str, now: datetime) -> None:
    if not await tx.execute("wipe_dataclip", {"id": dataclip_id, "now": now}):
        raise NotFoundError(f"dataclip {dataclip_id} does not exist", field="id")


def _dataclip(tx: Tx, row: Row) -> Dataclip:
    return Dataclip(
        id=row["id"],
        project_id=row["project_id"],
        type=DataclipType(row["type"]),
        body=loads_or_none(row["body"]),
        request=loads_or_none(row["request"]),
        wiped_at=time_or_none(tx, row["wiped_at"]),
        inserted_at=tx.time(row["inserted_at"]),
    )
