"""A workflow spec as the REST API's workflow document, and back.

``desired_workflow`` keeps every id the coordinator already has for a thing the file still
names (see the package docstring for how things are matched), and mints ids only for new
ones: a webhook trigger keeps its URL across deploys. Settings the file has no words for
(made through the API) are carried over, so a deploy does not reset them. (Whether a
document changes anything is the coordinator's to say: it saves no new version of a workflow
already as wanted.) ``spec_of_workflow`` is the way back, for ``fulmen pull``.

Each job's document says its language. A JavaScript job's adaptor is sent as the exact
version the coordinator resolved it to just before (``adaptors``, from ``GET
/api/adaptors/resolved``), and a Python job's package adaptor and requirements as the exact
pins it resolved them to (``packages``, from ``POST /api/python-packages/resolved``, asked by
:func:`packages_request`), as the coordinator would save them: so an unchanged file compares
equal to what is deployed, and a ``@latest`` that moved on shows as a change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from uuid import uuid4

from fulmen import python_requirements
from fulmen.errors import InputError
from fulmen.plan import JAVASCRIPT, PYTHON, language_of
from fulmen.project.spec import EdgeSpec, JobSpec, TriggerSpec, WorkflowSpec, default_condition

__all__ = [
    "Pins",
    "desired_workflow",
    "javascript_adaptors",
    "packages_request",
    "spec_of_workflow",
]

Document = dict[str, Any]
#: A Python job's packages as the coordinator would save them: its adaptor and requirements.
Pins = tuple[str, tuple[str, ...]]

#: Fields of a deployed workflow document that only the server sets.
_SERVER_ONLY = frozenset({"project_id", "version", "snapshot_id", "inserted_at", "updated_at"})


def _new_id() -> str:
    return str(uuid4())


def javascript_adaptors(specs: Iterable[WorkflowSpec]) -> list[str]:
    """The adaptors of the JavaScript jobs of ``specs``, each once, in file order: what to
    resolve before deploying."""
    wanted = (job.adaptor for spec in specs for job in spec.jobs if job.runs_in == JAVASCRIPT)
    return list(dict.fromkeys(wanted))


def packages_request(spec: WorkflowSpec, existing: Mapping[str, Any] | None) -> Document | None:
    """What to ask ``POST /api/python-packages/resolved`` about ``spec``'s Python packages
    (every job, in file order, so that the answer's paths are the file's), or None when no
    Python job names a package. ``existing``, the deployed workflow, lends its id: the pins
    it has are not asked about again."""
    try:
        wanted = any(python_requirements.package_requirements(j.as_job()) for j in spec.jobs)
    except InputError:
        wanted = True  # the coordinator says what is wrong with it
    if not wanted:
        return None
    request: Document = {
        "jobs": [
            {
                "name": job.name,
                "adaptor": job.adaptor,
                "language": job.runs_in,
                "requirements": list(job.requirements),
            }
            for job in spec.jobs
        ]
    }
    if existing is not None:
        request["workflow_id"] = existing["id"]
    return request


def desired_workflow(
    spec: WorkflowSpec,
    existing: Mapping[str, Any] | None,
    credentials: Mapping[str, str],
    new_id: Callable[[], str] = _new_id,
    adaptors: Mapping[str, str] | None = None,
    packages: Mapping[str, Pins] | None = None,
    keychains: Mapping[str, str] | None = None,
) -> Document:
    """The document to save for ``spec``: ``existing``'s ids where things match.

    Args:
        spec: the workflow as the file has it.
        existing: the deployed document of the same name, if any.
        credentials: credential ids by name (every name the spec's jobs use).
        new_id: mints the ids of new things.
        adaptors: the exact adaptor of each JavaScript job's adaptor as written (one not
            there is sent as written, and the coordinator resolves it).
        packages: each Python job's packages (by the job's name) as the coordinator would
            save them (a job not there is sent as written, and the coordinator resolves it).
        keychains: keychain ids by name (every name the spec's jobs use).
    """
    named = keychains or {}
    exact = adaptors or {}
    pinned = packages or {}
    old = existing or {}
    old_jobs: dict[str, str] = {}
    for job in old.get("jobs", ()):
        if job.get("name"):
            old_jobs.setdefault(job["name"], job["id"])
    job_ids = {job.name: old_jobs.get(job.name) or new_id() for job in spec.jobs}
    pools: dict[str, list[str]] = defaultdict(list)
    for trigger in old.get("triggers", ()):
        pools[trigger["type"]].append(trigger["id"])
    trigger_ids = {
        t.name: pools[t.type].pop(0) if pools[t.type] else new_id() for t in spec.triggers
    }
    old_edges = {
        (edge.get("source_trigger_id") or edge.get("source_job_id"), edge["target_job_id"]): edge[
            "id"
        ]
        for edge in old.get("edges", ())
    }
    edges = []
    for edge in spec.edges:
        from_trigger = edge.source in trigger_ids
        source = trigger_ids[edge.source] if from_trigger else job_ids[edge.source]
        target = job_ids[edge.target]
        edges.append(
            {
                "id": old_edges.get((source, target)) or new_id(),
                "source_trigger_id": source if from_trigger else None,
                "source_job_id": None if from_trigger else source,
                "target_job_id": target,
                "condition": edge.condition,
                "enabled": edge.enabled,
            }
        )
    jobs = [
        {
            "id": job_ids[job.name],
            "name": job.name,
            "body": job.body,
            **_packages(job, exact, pinned),
            "credential_id": credentials[job.credential] if job.credential else None,
            "keychain_id": named[job.keychain] if job.keychain else None,
            "language": job.runs_in,
        }
        for job in spec.jobs
    ]
    triggers = [
        {
            "id": trigger_ids[t.name],
            "type": t.type,
            "enabled": t.enabled,
            "cron_expression": t.cron,
            "timezone": t.timezone,
            "webhook_reply": t.reply,
        }
        for t in spec.triggers
    ]
    kept = {k: v for k, v in old.items() if k not in _SERVER_ONLY}
    return {
        **kept,
        "id": old.get("id") or new_id(),
        "name": spec.name,
        "concurrency": spec.concurrency,
        "jobs": _over(old.get("jobs", ()), jobs),
        "triggers": _over(old.get("triggers", ()), triggers),
        "edges": _over(old.get("edges", ()), edges),
    }


def _packages(job: JobSpec, adaptors: Mapping[str, str], pinned: Mapping[str, Pins]) -> Document:
    """A job's adaptor and requirements as the coordinator would save them, where known."""
    if job.runs_in == JAVASCRIPT:
        return {"adaptor": adaptors.get(job.adaptor, job.adaptor), "requirements": []}
    if job.runs_in == PYTHON and job.name in pinned:
        adaptor, requirements = pinned[job.name]
        return {"adaptor": adaptor, "requirements": list(requirements)}
    return {"adaptor": job.adaptor, "requirements": list(job.requirements)}


def _over(deployed: Any, wanted: list[Document]) -> list[Document]:
    """Each wanted item laid over the deployed one with its id: settings the file does not
    speak of (made through the API) are kept, not reset to their defaults."""
    by_id = {item["id"]: item for item in deployed}
    return [{**by_id.get(item["id"], {}), **item} for item in wanted]


def spec_of_workflow(
    document: Mapping[str, Any],
    credential_names: Mapping[str, str],
    previous: WorkflowSpec | None = None,
    keychain_names: Mapping[str, str] | None = None,
) -> WorkflowSpec:
    """The spec of a deployed workflow document.

    Args:
        document: the REST API's workflow document.
        credential_names: credential names by id.
        previous: the same workflow in the local file, if any: its trigger names and job
            files are kept, so pulling over the file one deployed rewrites it as it was.
        keychain_names: keychain names by id.
    """
    keychains = keychain_names or {}
    trigger_names = _trigger_names(document.get("triggers", ()), previous)
    triggers = tuple(
        TriggerSpec(
            name=trigger_names[t["id"]],
            type=t["type"],
            enabled=t.get("enabled", True),
            cron=t.get("cron_expression"),
            timezone=t.get("timezone"),
            reply=t.get("webhook_reply") if t.get("webhook_reply") != "before_start" else None,
        )
        for t in document.get("triggers", ())
    )
    files = {job.name: job.body_file for job in previous.jobs} if previous else {}
    job_names = {job["id"]: job.get("name") or job["id"] for job in document.get("jobs", ())}
    jobs = tuple(
        JobSpec(
            name=job_names[job["id"]],
            body=job["body"],
            adaptor=job["adaptor"],
            credential=credential_names.get(job["credential_id"], job["credential_id"])
            if job.get("credential_id")
            else None,
            body_file=files.get(job_names[job["id"]]),
            language=_language(job),
            requirements=tuple(job.get("requirements") or ()),
            keychain=keychains.get(job["keychain_id"], job["keychain_id"])
            if job.get("keychain_id")
            else None,
        )
        for job in document.get("jobs", ())
    )
    edges = []
    for edge in document.get("edges", ()):
        from_trigger = bool(edge.get("source_trigger_id"))
        source = (
            trigger_names.get(edge["source_trigger_id"], edge["source_trigger_id"])
            if from_trigger
            else job_names.get(edge["source_job_id"], edge["source_job_id"])
        )
        edges.append(
            EdgeSpec(
                source=source,
                target=job_names.get(edge["target_job_id"], edge["target_job_id"]),
                condition=edge.get("condition") or default_condition(from_trigger),
                enabled=edge.get("enabled", True),
            )
        )
    return WorkflowSpec(
        name=document["name"],
        jobs=jobs,
        triggers=triggers,
        edges=tuple(edges),
        concurrency=document.get("concurrency"),
    )


def _language(job: Mapping[str, Any]) -> str | None:
    """A deployed job's language, when it is not the one its adaptor implies (a file says
    only what differs from the default)."""
    said = job.get("language")
    return said if said and said != language_of(job["adaptor"]) else None


def _trigger_names(triggers: Any, previous: WorkflowSpec | None) -> dict[str, str]:
    """Names for deployed triggers: the local file's, matched by type and position as deploy
    matches them; else the type, then ``<type>-2``, ``<type>-3``…"""
    pools: dict[str, list[str]] = defaultdict(list)
    for spec in previous.triggers if previous else ():
        pools[spec.type].append(spec.name)
    names: dict[str, str] = {}
    counts: dict[str, int] = defaultdict(int)
    for trigger in triggers:
        kind = trigger["type"]
        counts[kind] += 1
        fallback = kind if counts[kind] == 1 else f"{kind}-{counts[kind]}"
        names[trigger["id"]] = pools[kind].pop(0) if pools[kind] else fallback
    return names
