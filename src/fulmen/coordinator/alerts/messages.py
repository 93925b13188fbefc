"""What an alert or digest says, in words (an e-mail's subject and text) and as a document
(a webhook's JSON body). Pure: rendered from the content the store kept for the alert, so
that every coordinator, and every retry, sends the same message.

The webhook document follows Standard Webhooks' shape: ``{"type", "timestamp", "data"}``,
where ``type`` is ``fulmen.alert.failures`` or ``fulmen.alert.digest``, ``timestamp`` when
the alert was made, and ``data`` the alert's content with the dashboard's paths (or links,
with ``FULMEN_PUBLIC_URL``) of the runs it names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from fulmen.store import Alert, AlertKind

__all__ = ["Message", "render"]

#: How an outcome reads after "1 run" / "20 runs".
_VERBS: Final = {
    "failed": "failed",
    "crashed": "crashed",
    "killed": "were killed",
    "lost": "were lost",
    "exception": "ended in an exception",
    "cancelled": "were cancelled",
}
_ONE: Final = {
    "were killed": "was killed",
    "were lost": "was lost",
    "were cancelled": "was cancelled",
}


@dataclass(frozen=True, slots=True)
class Message:
    subject: str
    text: str
    #: The webhook's JSON body.
    document: dict[str, Any]


def render(alert: Alert, public_url: str | None = None) -> Message:
    base = (public_url or "").rstrip("/") + "/ui"
    body = dict(alert.body)
    if alert.kind is AlertKind.FAILURES:
        subject, text = _failures(body, base)
        for end in ("first", "last"):
            body[f"{end}_run_url"] = f"{base}/runs/{body[f'{end}_run_id']}"
    else:
        subject, text = _digest(body)
    document = {
        "type": f"fulmen.alert.{alert.kind.value}",
        "timestamp": alert.inserted_at.isoformat(),
        "data": {"alert_id": alert.id, **body},
    }
    # one line, whatever names hold: a header with a line break would be refused, or worse
    return Message(" ".join(subject.split()), text, document)


def _failures(body: Mapping[str, Any], base: str) -> tuple[str, str]:
    count = int(body["count"])
    outcomes: dict[str, int] = body["outcomes"]
    workflow, project = body["workflow"]["name"], body["project"]["name"]
    runs = f"{count} run{'s' if count != 1 else ''}"
    if len(outcomes) == 1:
        verb = _VERBS.get(next(iter(outcomes)), "ended badly")
        what = f"{runs} {_ONE.get(verb, verb) if count == 1 else verb}"
    else:
        what = f"{runs} ended badly ({_counts(outcomes)})"
    subject = f"[Fulmen] {workflow}: {what}"
    period = int(body["period_seconds"])
    lines = [
        f"Workflow {workflow!r} of project {project!r}: {what}.",
        "",
        f"Between {_when(body['first_ended_at'])} and {_when(body['last_ended_at'])}.",
        f"Outcomes: {_counts(outcomes)}.",
        f"Error types: {_counts(body['error_types'])}.",
        f"First run: {body['first_run_id']} ({base}/runs/{body['first_run_id']})",
    ]
    if count > 1:
        lines.append(f"Last run: {body['last_run_id']} ({base}/runs/{body['last_run_id']})")
        lines += [
            "",
            f"{count} runs are folded into this alert: this workflow alerts at most once "
            f"every {_duration(period)}, and the runs that end in between are counted in "
            "the next alert.",
        ]
    return subject, "\n".join(lines) + "\n"


def _digest(body: Mapping[str, Any]) -> tuple[str, str]:
    project = body["project"]["name"]
    total = int(body["total"])
    outcomes: dict[str, int] = body["outcomes"]
    bad = total - outcomes.get("success", 0)
    span = f"{_when(body['start'])} to {_when(body['end'])}"
    subject = f"[Fulmen] {project}: {body['frequency']} digest, {total} runs, {bad} not successful"
    lines = [f"Project {project!r}, {span}.", "", "Runs by outcome:"]
    lines += [f"  {state}: {n}" for state, n in sorted(outcomes.items())] or ["  (no runs)"]
    lines += ["", "Slowest workflows:"]
    lines += [
        f"  {w['name']}: slowest {_ms(w['max_ms'])}, average {_ms(w['avg_ms'])}, {w['runs']} runs"
        for w in body["slowest"]
    ] or ["  (none)"]
    lines += ["", "New failure types:"]
    lines += [
        f"  {f['error_type']}: {f['runs']} runs, first at {_when(f['first_seen'])}"
        for f in body["new_failure_types"]
    ] or ["  (none)"]
    return subject, "\n".join(lines) + "\n"


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda i: -i[1]))


def _when(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _ms(ms: int) -> str:
    return f"{ms / 1000:.1f} s"
