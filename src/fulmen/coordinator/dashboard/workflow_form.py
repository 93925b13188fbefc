"""The workflow editor's form: a workflow as the fields of one HTML form, and back.

The page is a plain form, so it works without its script (which only turns each job's code
``<textarea>`` into a code editor). Changing the workflow's shape (adding or removing a job,
an edge, a trigger) is a button of the same form: the server applies it to the draft and
renders the form again, so nothing typed is lost and the edges' menus always list the jobs
as they are named now. Only the Save button saves.

Field names are ``name``, ``version`` and ``<list>-<index>-<attribute>`` (``jobs-1-adaptor``,
``edges-0-condition``). A save's errors are keyed by the same names, so that each is shown
next to its field: :func:`field_key` maps the paths the API's save reports
(``jobs[1].requirements[0]``) and pydantic's locations (``("jobs", 1, "adaptor")``) to them.

What the form does not show (a workflow's concurrency and retries, a trigger's webhook reply
and cron cursor, an edge's enabled flag) is kept from the version being edited.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from uuid import uuid4

from fulmen.plan import ALWAYS, JAVASCRIPT, LANGUAGES, ON_JOB_FAILURE, ON_JOB_SUCCESS, PYTHON
from fulmen.store import StoredWorkflow, TriggerType, Workflow

__all__ = [
    "CONDITIONS",
    "DEFAULT_ADAPTORS",
    "STARTERS",
    "Draft",
    "EdgeDraft",
    "JobDraft",
    "TriggerDraft",
    "field_key",
]

#: An edge's condition as the form offers it; ``expression``: the text of its own field.
CONDITIONS: Final = {
    ON_JOB_SUCCESS: "On success",
    ON_JOB_FAILURE: "On failure",
    ALWAYS: "Always",
    "expression": "When an expression holds",
}
#: What a new job's code is, in each language: the smallest job that runs.
STARTERS: Final = {
    PYTHON: "@fn\ndef step(state):\n    return state\n",
    JAVASCRIPT: "fn(state => state);\n",
}
#: What a new job's adaptor is: Fulmen's (Python) or OpenFn's (JavaScript) common adaptor.
DEFAULT_ADAPTORS: Final = {PYTHON: "common", JAVASCRIPT: "@openfn/language-common@latest"}
_PATH_PART: Final = re.compile(r"([a-z_]+)(?:\[(\d+)\])?")


#: How the job form's credential menu names a keychain (issue 19) beside the credentials.
KEYCHAIN: Final = "keychain:"


def _credential_or_keychain(chosen: str) -> dict[str, str | None]:
    """The menu's choice as a job document names it: a credential, or a keychain."""
    if chosen.startswith(KEYCHAIN):
        return {"credential_id": None, "keychain_id": chosen.removeprefix(KEYCHAIN) or None}
    return {"credential_id": chosen or None, "keychain_id": None}


def _new_id() -> str:
    return str(uuid4())


@dataclass(slots=True)
class JobDraft:
    id: str
    name: str
    language: str = PYTHON
    adaptor: str = "common"
    #: One requirement a line, as the form's textarea holds them.
    requirements: str = ""
    #: A credential's id, or ``keychain:<id>`` (:data:`KEYCHAIN`): one menu for both.
    credential_id: str = ""
    body: str = STARTERS[PYTHON]


@dataclass(slots=True)
class EdgeDraft:
    id: str
    #: ``trigger:<id>`` or ``job:<id>``: one menu for both kinds of source.
    source: str
    target: str
    #: A key of :data:`CONDITIONS`.
    condition: str = ON_JOB_SUCCESS
    expression: str = ""


@dataclass(slots=True)
class TriggerDraft:
    id: str
    type: str = TriggerType.WEBHOOK.value
    cron_expression: str = ""
    timezone: str = ""
    enabled: bool = True


@dataclass(slots=True)
class Draft:
    """A workflow as the form holds it, whether valid or not."""

    name: str
    jobs: list[JobDraft] = field(default_factory=list)
    edges: list[EdgeDraft] = field(default_factory=list)
    triggers: list[TriggerDraft] = field(default_factory=list)
    #: The version it was read from (``expected_version`` when saved); ``None``: a new one.
    version: int | None = None

    @classmethod
    def new(cls) -> Draft:
        """A new workflow: one Python job run by a webhook."""
        job = JobDraft(_new_id(), "First job")
        trigger = TriggerDraft(_new_id())
        edge = EdgeDraft(_new_id(), f"trigger:{trigger.id}", job.id, ALWAYS)
        return cls(name="", jobs=[job], edges=[edge], triggers=[trigger])

    @classmethod
    def of(cls, stored: StoredWorkflow) -> Draft:
        w = stored.workflow
        return cls(
            name=w.name,
            jobs=[
                JobDraft(
                    id=j.id,
                    name=j.name or "",
                    language=j.runs_in,
                    adaptor=j.adaptor,
                    requirements="\n".join(j.requirements),
                    credential_id=j.credential_id
                    or (KEYCHAIN + j.keychain_id if j.keychain_id else ""),
                    body=j.body,
                )
                for j in w.jobs
            ],
            edges=[
                EdgeDraft(
                    id=e.id,
                    source=f"trigger:{e.source_trigger_id}"
                    if e.source_trigger_id
                    else f"job:{e.source_job_id}",
                    target=e.target_job_id,
                    condition=e.condition if e.condition in CONDITIONS else "expression",
                    expression="" if e.condition in CONDITIONS else e.condition,
                )
                for e in w.edges
            ],
            triggers=[
                TriggerDraft(
                    id=t.id,
                    type=t.type.value,
                    cron_expression=t.cron_expression or "",
                    timezone=t.timezone or "",
                    enabled=t.enabled,
                )
                for t in w.triggers
            ],
            version=stored.version,
        )

    @classmethod
    def read(cls, form: Mapping[str, str]) -> Draft:
        """The draft a posted form holds (each list read up to its first missing index)."""

        def rows(kind: str) -> list[dict[str, str]]:
            out: list[dict[str, str]] = []
            while f"{kind}-{len(out)}-id" in form:
                prefix = f"{kind}-{len(out)}-"
                out.append({k[len(prefix) :]: v for k, v in form.items() if k.startswith(prefix)})
            return out

        version = form.get("version", "")
        return cls(
            name=form.get("name", "").strip(),
            jobs=[
                JobDraft(
                    id=row["id"],
                    name=row.get("name", "").strip(),
                    language=row.get("language", PYTHON),
                    adaptor=row.get("adaptor", "").strip(),
                    requirements=row.get("requirements", ""),
                    credential_id=row.get("credential_id", ""),
                    # browsers post CRLF line ends; the editor and the runtime count LF lines
                    body=row.get("body", "").replace("\r\n", "\n"),
                )
                for row in rows("jobs")
            ],
            edges=[
                EdgeDraft(
                    id=row["id"],
                    source=row.get("source", ""),
                    target=row.get("target", ""),
                    condition=row.get("condition", ON_JOB_SUCCESS),
                    expression=row.get("expression", "").strip(),
                )
                for row in rows("edges")
            ],
            triggers=[
                TriggerDraft(
                    id=row["id"],
                    type=row.get("type", TriggerType.WEBHOOK.value),
                    cron_expression=row.get("cron_expression", "").strip(),
                    timezone=row.get("timezone", "").strip(),
                    enabled="enabled" in row,
                )
                for row in rows("triggers")
            ],
            version=int(version) if version.isdigit() else None,
        )

    def apply(self, action: str) -> str | None:
        """Change the draft's shape as a form button asks (``add-job``, ``remove-edge:2``…);
        the name of the field to focus next, if any. An unknown action changes nothing."""
        verb, _, argument = action.partition(":")
        index = int(argument) if argument.isdigit() else -1
        if verb == "add-job":
            job = JobDraft(_new_id(), f"Job {len(self.jobs) + 1}")
            if self.jobs:  # the usual next step: after the last job, when it succeeds
                self.edges.append(EdgeDraft(_new_id(), f"job:{self.jobs[-1].id}", job.id))
            self.jobs.append(job)
            return f"jobs-{len(self.jobs) - 1}-name"
        if verb == "remove-job" and 0 <= index < len(self.jobs):
            gone = self.jobs.pop(index).id
            self.edges = [e for e in self.edges if e.target != gone and e.source != f"job:{gone}"]
            return None
        if verb == "add-edge":
            source = f"job:{self.jobs[0].id}" if self.jobs else ""
            self.edges.append(EdgeDraft(_new_id(), source, ""))
            return f"edges-{len(self.edges) - 1}-source"
        if verb == "remove-edge" and 0 <= index < len(self.edges):
            del self.edges[index]
            return None
        if verb == "add-trigger" and argument in (TriggerType.WEBHOOK, TriggerType.CRON):
            cron = argument == TriggerType.CRON
            trigger = TriggerDraft(_new_id(), argument, "0 * * * *" if cron else "")
            self.triggers.append(trigger)
            suffix = "cron_expression" if cron else "enabled"
            return f"triggers-{len(self.triggers) - 1}-{suffix}"
        if verb == "remove-trigger" and 0 <= index < len(self.triggers):
            gone = self.triggers.pop(index).id
            self.edges = [e for e in self.edges if e.source != f"trigger:{gone}"]
            return None
        return None

    def problems(self) -> dict[str, str]:
        """What the form itself can tell is missing, by field, before the save's checks."""
        found: dict[str, str] = {}
        if not self.name:
            found["name"] = "Give the workflow a name."
        if not self.jobs:
            found["jobs"] = "A workflow needs at least one job."
        seen: set[str] = set()
        for i, job in enumerate(self.jobs):
            if not job.name:
                found[f"jobs-{i}-name"] = "Give the job a name."
            elif job.name.casefold() in seen:
                found[f"jobs-{i}-name"] = "Another job has this name."
            seen.add(job.name.casefold())
            if job.language not in LANGUAGES:
                found[f"jobs-{i}-language"] = "Choose Python or JavaScript."
            if not job.adaptor:
                found[f"jobs-{i}-adaptor"] = "Say which adaptor runs it (common, say)."
        jobs = {job.id for job in self.jobs}
        sources = {f"job:{j}" for j in jobs} | {f"trigger:{t.id}" for t in self.triggers}
        for i, edge in enumerate(self.edges):
            if edge.source not in sources:
                found[f"edges-{i}-source"] = "Choose where the edge starts."
            if edge.target not in jobs:
                found[f"edges-{i}-target"] = "Choose the job it leads to."
            if edge.condition not in CONDITIONS:
                found[f"edges-{i}-condition"] = "Choose when it is followed."
            elif edge.condition == "expression" and not edge.expression:
                found[f"edges-{i}-expression"] = "Write the expression."
        for i, trigger in enumerate(self.triggers):
            if trigger.type == TriggerType.CRON and not trigger.cron_expression:
                found[f"triggers-{i}-cron_expression"] = "Write when it runs (0 * * * *)."
        return found

    def document(self, current: Workflow | None) -> dict[str, Any]:
        """The draft as the API's workflow document (api.schemas.catalog.WorkflowIn), in the
        form's order, so that a path the save names is a field of the form. What the form
        does not show comes from ``current``."""
        triggers = {t.id: t for t in current.triggers} if current else {}
        edges = {e.id: e for e in current.edges} if current else {}
        doc: dict[str, Any] = {
            "id": current.id if current else _new_id(),
            "name": self.name,
            "jobs": [
                {
                    "id": j.id,
                    "name": j.name,
                    "language": j.language,
                    "adaptor": j.adaptor,
                    "requirements": _lines(j.requirements),
                    **_credential_or_keychain(j.credential_id),
                    "body": j.body,
                }
                for j in self.jobs
            ],
            "triggers": [_trigger(t, triggers.get(t.id)) for t in self.triggers],
            "edges": [_edge(e, edges.get(e.id)) for e in self.edges],
        }
        if current is not None:
            doc["concurrency"] = current.concurrency
            doc["retry"] = {
                "max_retries": current.retry.max_retries,
                "backoff_ms": current.retry.backoff_ms,
                "backoff_max_ms": current.retry.backoff_max_ms,
                "on_fail": current.retry.on_fail,
            }
        return doc


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _trigger(t: TriggerDraft, kept: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": t.id, "type": t.type, "enabled": t.enabled}
    if t.type == TriggerType.CRON:
        out["cron_expression"] = t.cron_expression
        out["timezone"] = t.timezone or None
    if kept is not None and kept.type.value == t.type:
        if kept.webhook_reply is not None:
            out["webhook_reply"] = kept.webhook_reply.value
        out["cron_cursor"] = kept.cron_cursor.value
        out["cron_cursor_job_id"] = kept.cron_cursor_job_id
    return out


def _edge(e: EdgeDraft, kept: Any) -> dict[str, Any]:
    kind, _, source = e.source.partition(":")
    return {
        "id": e.id,
        "source_trigger_id": source if kind == "trigger" else None,
        "source_job_id": source if kind == "job" else None,
        "target_job_id": e.target,
        "condition": e.expression if e.condition == "expression" else e.condition,
        "enabled": kept.enabled if kept is not None else True,
    }


def field_key(path: str | Sequence[str | int]) -> str:
    """The form field a save's error is about: ``jobs[1].requirements[0]`` (the API's) and
    ``("jobs", 1, "adaptor")`` (pydantic's) are ``jobs-1-requirements`` and
    ``jobs-1-adaptor``; a workflow's own ``name`` is ``name``; an edge's condition is its
    expression's field (a named condition cannot be wrong); ``""``: no field of the form."""
    parts: list[str | int] = []
    if isinstance(path, str):
        for piece in path.split("."):
            match = _PATH_PART.fullmatch(piece)
            if match is None:
                return ""
            parts.append(match.group(1))
            if match.group(2) is not None:
                parts.append(int(match.group(2)))
    else:
        parts = list(path)
    if parts and parts[0] in ("body", "query"):
        parts = parts[1:]  # FastAPI's locations start with where the value was
    if not parts:
        return ""
    if parts[0] == "name":
        return "name"
    if len(parts) >= 3 and parts[0] in ("jobs", "edges", "triggers") and isinstance(parts[1], int):
        attribute = str(parts[2])
        if parts[0] == "edges" and attribute == "condition":
            attribute = "expression"
        if parts[0] == "edges" and attribute in ("source_job_id", "source_trigger_id"):
            attribute = "source"
        if parts[0] == "edges" and attribute == "target_job_id":
            attribute = "target"
        return f"{parts[0]}-{parts[1]}-{attribute}"
    if parts[0] in ("jobs", "edges", "triggers"):
        return str(parts[0])
    return ""
