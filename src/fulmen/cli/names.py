"""Projects, workflows and jobs named the way a user types them: by id or by name.

``fulmen runs list --workflow count-and-report`` and ``runs rerun --from-job check`` take what
the user reads on the dashboard and in their project file, not only the ids the store made.
:func:`pick` is the one rule (an id first, then a name, then a name in another case), pure so
that it is tested as a table; :class:`Names` reads what it needs through the REST API, each
listing once per command. A name that several things share is refused with their ids, never
guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fulmen.cli.bootstrap import CliError
from fulmen.cli.client import Api
from fulmen.errors import ApiError

__all__ = ["Names", "pick"]

Doc = dict[str, Any]


def pick(
    command: str,
    kind: str,
    text: str,
    items: Sequence[Doc],
    *,
    where: Callable[[Doc], str] = lambda item: "",
) -> Doc:
    """The item whose id is ``text``, else the one named ``text`` (exactly, then in any case).

    Raises:
        CliError: none matches (naming what there is) or several share the name (naming
            their ids and ``where`` each is).
    """
    for item in items:
        if item["id"] == text:
            return item
    for same in (
        lambda item: item.get("name") == text,
        lambda item: str(item.get("name") or "").casefold() == text.casefold(),
    ):
        found = [item for item in items if same(item)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            ids = ", ".join(f"{item['id']}{where(item)}" for item in found)
            raise CliError(command, f"{len(found)} {kind}s are named {text!r}: {ids}; give the id")
    known = ", ".join(sorted(str(item.get("name") or item["id"]) for item in items)[:10])
    raise CliError(
        command, f"no {kind} is named {text!r}" + (f" ({kind}s: {known})" if known else "")
    )


class Names:
    """Look-ups by id or name through one coordinator's API, cached for one command."""

    def __init__(self, command: str, api: Api) -> None:
        self._command = command
        self._api = api
        self._projects: list[Doc] | None = None
        self._workflows: dict[str, list[Doc]] = {}
        self._by_id: dict[str, Doc | None] = {}

    def project(self, text: str) -> Doc:
        return pick(self._command, "project", text, self._all_projects())

    def workflow(self, text: str, *, project: Doc | None = None) -> Doc:
        projects = [project] if project else self._all_projects()
        names = {p["id"]: p["name"] for p in projects}
        workflows = [w for p in projects for w in self._project_workflows(p["id"])]
        return pick(
            self._command,
            "workflow",
            text,
            workflows,
            where=lambda w: f" (project {names.get(w['project_id'], w['project_id'])})",
        )

    def workflow_by_id(self, workflow_id: str) -> Doc | None:
        """The workflow, or ``None`` if it is gone (a run outlives its workflow's deletion)."""
        if workflow_id not in self._by_id:
            try:
                self._by_id[workflow_id] = self._api.call("GET", f"/api/workflows/{workflow_id}")
            except ApiError as exc:
                if exc.status != 404:
                    raise CliError(self._command, exc.message, exit_code=1) from exc
                self._by_id[workflow_id] = None
        return self._by_id[workflow_id]

    def job(self, workflow: Doc, text: str) -> Doc:
        return pick(self._command, f"job of workflow {workflow['name']!r}", text, workflow["jobs"])

    def _all_projects(self) -> list[Doc]:
        if self._projects is None:
            self._projects = list(self._pages("/api/projects"))
        return self._projects

    def _project_workflows(self, project_id: str) -> list[Doc]:
        if project_id not in self._workflows:
            found = list(self._pages(f"/api/projects/{project_id}/workflows"))
            self._workflows[project_id] = found
            self._by_id.update({w["id"]: w for w in found})
        return self._workflows[project_id]

    def _pages(self, path: str) -> list[Doc]:
        try:
            return list(self._api.pages(path))
        except ApiError as exc:
            raise CliError(self._command, exc.message, exit_code=1) from exc
