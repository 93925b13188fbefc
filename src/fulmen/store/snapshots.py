"""Workflow snapshots as the hot path reads them: each document parsed once per process.

Every run reads its workflow's snapshot three times on its way (its enqueue, the plan its
worker fetches, its first ``step:start``), and each read parsed the whole document again
and rebuilt its jobs, triggers and edges, however large their bodies. A snapshot is written
whole and never updated (schema: ``workflow_snapshots``; only a migration rewrites old
ones), so what is derived from its document is kept, by its id, with the document's text:
a read whose text is not the one kept (another database, a migrated row) parses afresh.
Comparing two texts costs a fraction of parsing one. The latest :data:`KEPT` snapshots are
kept, up to :data:`KEPT_BYTES` of documents; a larger document is parsed every time.

What is kept is shared between runs and must not be changed: its job documents are read
only (``keychains.run_jobs`` copies a job before it changes one), the rest is frozen.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any, Final

from fulmen.errors import NotFoundError
from fulmen.plan import Edge, Job, Trigger
from fulmen.store.catalog import job_from_document
from fulmen.store.db import Tx, loads
from fulmen.store.newruns import languages_of

__all__ = ["KEPT", "KEPT_BYTES", "Snapshot", "parsed", "read"]

#: How many snapshots a process keeps parsed...
KEPT: Final = 256
#: ...and how much document text, at most, they hold between them (their parsed form, mostly
#: the same job bodies, about as much again).
KEPT_BYTES: Final = 4 * 1024 * 1024


class Snapshot:
    """One snapshot's document and what the hot path derives from it, each part derived
    when first asked for (as before, a document a part cannot be made of fails only the
    reads that need that part)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        #: The parsed document: read only.
        self.document = document

    @property
    def job_documents(self) -> Sequence[Mapping[str, Any]]:
        jobs: Sequence[Mapping[str, Any]] = self.document["jobs"]
        return jobs

    @cached_property
    def job_ids(self) -> frozenset[str]:
        return frozenset(job["id"] for job in self.job_documents)

    @cached_property
    def jobs(self) -> tuple[Job, ...] | None:
        """The plan's jobs; ``None`` when one names a keychain: they depend on the run."""
        if any(job.get("keychain_id") for job in self.job_documents):
            return None
        return tuple(job_from_document(job) for job in self.job_documents)

    @cached_property
    def triggers(self) -> tuple[Trigger, ...]:
        return tuple(Trigger(id=trigger["id"]) for trigger in self.document["triggers"])

    @cached_property
    def edges(self) -> tuple[Edge, ...]:
        return tuple(Edge(**edge) for edge in self.document["edges"])

    @cached_property
    def languages(self) -> int:
        """The job languages a run of it needs (``newruns.languages_of``)."""
        return languages_of(self.document)


_kept: OrderedDict[str, tuple[str | bytes, Snapshot]] = OrderedDict()
_kept_bytes = 0


def parsed(snapshot_id: str, document: str | bytes) -> Snapshot:
    """The snapshot ``snapshot_id`` whose stored document is ``document``: as parsed
    before, or parsed now."""
    global _kept_bytes
    known = _kept.get(snapshot_id)
    if known is not None and known[0] == document:
        _kept.move_to_end(snapshot_id)
        return known[1]
    made = Snapshot(loads(document))
    if known is not None:
        del _kept[snapshot_id]
        _kept_bytes -= len(known[0])
    if len(document) <= KEPT_BYTES // 4:
        _kept[snapshot_id] = (document, made)
        _kept_bytes += len(document)
        while len(_kept) > KEPT or _kept_bytes > KEPT_BYTES:
            _kept_bytes -= len(_kept.popitem(last=False)[1][0])
    return made


async def read(tx: Tx, snapshot_id: str) -> Snapshot:
    """The snapshot ``snapshot_id`` from the store (its document parsed only if it is not
    the one kept)."""
    row = await tx.fetchone("get_snapshot", {"id": snapshot_id})
    if row is None:
        raise NotFoundError(f"snapshot {snapshot_id} does not exist", field="snapshot_id")
    return parsed(snapshot_id, row["document"])
