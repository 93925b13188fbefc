"""Snapshot documents kept parsed between reads: a snapshot id read with another document
(another database in the same process, a row a migration rewrote) is never answered from
what was kept for the first one."""

from __future__ import annotations

import orjson

from fulmen.store import snapshots


def _document(job_id: str, body: str = "fn(lambda s: s)\n") -> str:
    job = {"id": job_id, "body": body, "adaptor": "common"}
    return orjson.dumps({"jobs": [job], "triggers": [{"id": "t"}], "edges": []}).decode()


def test_the_same_document_is_parsed_once() -> None:
    first = snapshots.parsed("snap-once", _document("a"))
    assert snapshots.parsed("snap-once", _document("a")) is first
    assert first.job_ids == {"a"}
    assert first.jobs is not None and first.jobs[0].language == "python"


def test_another_document_under_the_same_id_is_read_as_it_is() -> None:
    assert snapshots.parsed("snap-reused", _document("a")).job_ids == {"a"}
    assert snapshots.parsed("snap-reused", _document("b")).job_ids == {"b"}
    assert snapshots.parsed("snap-reused", _document("a")).job_ids == {"a"}


def test_a_document_too_large_to_keep_is_parsed_every_time() -> None:
    large = _document("big", "#" * snapshots.KEPT_BYTES)
    first = snapshots.parsed("snap-large", large)
    assert first.job_ids == {"big"}
    assert snapshots.parsed("snap-large", large) is not first
