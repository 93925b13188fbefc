"""What alerts and digests say, rendered from the content the store keeps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fulmen.coordinator.alerts.messages import render
from fulmen.store import Alert, AlertKind

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def failures(count: int, outcomes: dict[str, int]) -> Alert:
    body: dict[str, Any] = {
        "kind": "failures",
        "project": {"id": "p", "name": "Clinic"},
        "workflow": {"id": "w", "name": "nightly"},
        "count": count,
        "first_run_id": "r1",
        "last_run_id": f"r{count}",
        "first_ended_at": "2026-03-04T11:58:00+00:00",
        "last_ended_at": "2026-03-04T11:59:30+00:00",
        "outcomes": outcomes,
        "error_types": {"RuntimeError": count},
        "period_seconds": 300,
        "previous_alert_at": None,
    }
    return Alert("a-1", "p", "w", AlertKind.FAILURES, body, T0)


def test_one_failure_reads_as_one_run() -> None:
    message = render(failures(1, {"failed": 1}))
    assert message.subject == "[Fulmen] nightly: 1 run failed"
    assert "First run: r1 (/ui/runs/r1)" in message.text
    assert "folded" not in message.text


def test_a_folded_alert_says_how_many_and_why() -> None:
    message = render(failures(19, {"failed": 17, "lost": 2}), "https://fulmen.example.org/")
    assert message.subject == "[Fulmen] nightly: 19 runs ended badly (failed 17, lost 2)"
    assert "19 runs are folded into this alert" in message.text
    assert "at most once every 5 min" in message.text
    assert "Last run: r19 (https://fulmen.example.org/ui/runs/r19)" in message.text
    document = message.document
    assert document["type"] == "fulmen.alert.failures"
    assert document["timestamp"] == "2026-03-04T12:00:00+00:00"
    assert document["data"]["count"] == 19 and document["data"]["alert_id"] == "a-1"
    assert document["data"]["last_run_url"] == "https://fulmen.example.org/ui/runs/r19"


def test_a_killed_run_and_a_digest() -> None:
    assert render(failures(1, {"killed": 1})).subject == "[Fulmen] nightly: 1 run was killed"
    body: dict[str, Any] = {
        "kind": "digest",
        "project": {"id": "p", "name": "Clinic"},
        "frequency": "daily",
        "start": "2026-03-03T00:00:00+00:00",
        "end": "2026-03-04T00:00:00+00:00",
        "total": 4,
        "outcomes": {"success": 1, "failed": 3},
        "slowest": [
            {"workflow_id": "w", "name": "nightly", "runs": 4, "max_ms": 3000, "avg_ms": 1500}
        ],
        "new_failure_types": [
            {"error_type": "TimeoutError", "runs": 2, "first_seen": "2026-03-03T09:00:00+00:00"}
        ],
    }
    message = render(Alert("d-1", "p", None, AlertKind.DIGEST, body, T0))
    assert message.subject == "[Fulmen] Clinic: daily digest, 4 runs, 3 not successful"
    assert "  failed: 3\n  success: 1\n" in message.text
    assert "  nightly: slowest 3.0 s, average 1.5 s, 4 runs" in message.text
    assert "  TimeoutError: 2 runs, first at 2026-03-03 09:00:00 UTC" in message.text
    assert message.document["type"] == "fulmen.alert.digest"


def test_a_subject_is_one_line_whatever_the_workflow_is_called() -> None:
    alert = failures(1, {"failed": 1})
    body = {**alert.body, "workflow": {"id": "w", "name": "nightly\nBcc: everyone@example.org"}}
    message = render(Alert("a-1", "p", "w", AlertKind.FAILURES, body, T0))
    assert message.subject == "[Fulmen] nightly Bcc: everyone@example.org: 1 run failed"
