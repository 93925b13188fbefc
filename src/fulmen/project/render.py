"""A project spec as a YAML file and the job files beside it (what ``fulmen pull`` writes).

Defaults are left out, so a pulled file reads like a hand-written one: a job's adaptor when it
is ``common``, its requirements when it has none, its language when its adaptor implies it
(``javascript`` for ``@openfn/language-*``, else ``python``), an edge's condition when it is
its source's default, ``enabled`` when true. A job whose body runs over several lines goes to
a file (the one the local file named, else ``<job>.py`` or ``<job>.js`` by its language, or
``<workflow>-<job>…`` when two workflows have a job of that name), unless the local file had
it inline; a one-line body stays inline. Triggers, edges and a job's requirements are written
one per line, in flow style.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import yaml

from fulmen.plan import JAVASCRIPT, language_of
from fulmen.project.spec import (
    JobSpec,
    ProjectSpec,
    TriggerSpec,
    WorkflowSpec,
    default_condition,
)

__all__ = ["render"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class _Flow(dict[str, Any]):
    """A mapping written on one line: ``{from: webhook, to: count}``."""


class _FlowList(list[str]):
    """A list written on one line: ``[httpx==0.28.1, fulmen-probe==2.0.0]``."""


class _Dumper(yaml.SafeDumper):
    """Block style, with multi-line text as literal blocks and ``_Flow`` mappings inline."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent a list under its key, as people write it.
        super().increase_indent(flow, False)


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value.rstrip("\n") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _flow(dumper: yaml.SafeDumper, value: _Flow) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", value.items(), flow_style=True)


_Dumper.add_representer(str, _text)


def _flow_list(dumper: yaml.SafeDumper, value: _FlowList) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)


_Dumper.add_representer(_Flow, _flow)
_Dumper.add_representer(_FlowList, _flow_list)


def render(
    project: ProjectSpec, *, inline: frozenset[tuple[str, str]] = frozenset()
) -> tuple[str, dict[str, str]]:
    """The project file's text, and the job files to write beside it (name to text).

    ``inline`` names the ``(workflow, job)`` whose body stays in the file whatever its
    length: those the local file had inline (``body: |``), which a pull keeps so.
    """
    files: dict[str, str] = {}
    shared = Counter(job.name for workflow in project.workflows for job in workflow.jobs)
    workflows = {}
    for workflow in project.workflows:
        workflows[workflow.name] = _workflow(workflow, files, shared, inline)
    document: dict[str, Any] = {"name": project.name}
    if project.id:
        document["id"] = project.id
    if project.concurrency:
        document["concurrency"] = project.concurrency
    if project.credentials:
        document["credentials"] = list(project.credentials)
    document["workflows"] = workflows
    text = yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100, indent=2
    )
    return text, files


def _workflow(
    workflow: WorkflowSpec,
    files: dict[str, str],
    shared: Counter[str],
    inline: frozenset[tuple[str, str]],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if workflow.concurrency:
        out["concurrency"] = workflow.concurrency
    if workflow.triggers:
        out["triggers"] = [_trigger(t) for t in workflow.triggers]
    out["jobs"] = [
        _job(workflow.name, job, files, shared, (workflow.name, job.name) in inline)
        for job in workflow.jobs
    ]
    triggers = {t.name for t in workflow.triggers}
    if workflow.edges:
        edges = []
        for edge in workflow.edges:
            item = _Flow({"from": edge.source, "to": edge.target})
            if edge.condition != default_condition(edge.source in triggers):
                item["condition"] = edge.condition
            if not edge.enabled:
                item["enabled"] = False
            edges.append(item)
        out["edges"] = edges
    return out


def _trigger(trigger: TriggerSpec) -> _Flow:
    item = _Flow({"type": trigger.type})
    if trigger.name != trigger.type:
        item["name"] = trigger.name
    for key, value in (("cron", trigger.cron), ("timezone", trigger.timezone)):
        if value:
            item[key] = value
    if trigger.reply:
        item["reply"] = trigger.reply
    if not trigger.enabled:
        item["enabled"] = False
    return item


def _job(
    workflow: str, job: JobSpec, files: dict[str, str], shared: Counter[str], inline: bool
) -> Any:
    out: dict[str, Any] = {"name": job.name}
    if job.adaptor != "common":
        out["adaptor"] = job.adaptor
    if job.language is not None and job.language != language_of(job.adaptor):
        out["language"] = job.language
    if job.requirements:
        out["requirements"] = _FlowList(job.requirements)
    if job.credential:
        out["credential"] = job.credential
    if job.keychain:
        out["keychain"] = job.keychain
    file = job.body_file
    if file is None and not inline and "\n" in job.body.rstrip("\n"):
        stem = job.name if shared[job.name] == 1 else f"{workflow}-{job.name}"
        suffix = ".js" if job.runs_in == JAVASCRIPT else ".py"
        file = _UNSAFE.sub("-", stem).strip("-.") + suffix
    if file is None:
        out["body"] = job.body
    else:
        out["body_file"] = file
        files[file] = job.body
    return out
