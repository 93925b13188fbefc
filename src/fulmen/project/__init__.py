"""Workflows as code: a project file (YAML) that ``fulmen deploy`` sends to a coordinator and
``fulmen pull`` writes back.

The file names things; the coordinator identifies them by ids. A project is found by its
``id`` when the file gives one, else by its name; a workflow by its name within the project;
a job by its name within the workflow; a trigger by its type and position (as Lightning's
project files key triggers by type); an edge by its two ends. So a file deploys the same way
twice (the second time nothing changes), from any checkout, with no state file beside it, and
webhook URLs survive every deploy.

* :mod:`fulmen.project.spec`: the file's values, and reading them (every problem reported with
  the path of its key);
* :mod:`fulmen.project.documents`: a spec as the REST API's workflow document, keeping the ids
  already deployed, and a deployed document as a spec;
* :mod:`fulmen.project.render`: a spec as YAML text and the job files beside it.

Nothing here does network I/O; ``fulmen.cli.deploy`` does.
"""

from __future__ import annotations

from fulmen.project.documents import (
    Pins,
    desired_workflow,
    javascript_adaptors,
    packages_request,
    spec_of_workflow,
)
from fulmen.project.render import render
from fulmen.project.spec import (
    EdgeSpec,
    JobSpec,
    ProjectSpec,
    TriggerSpec,
    WorkflowSpec,
    load,
    parse,
)

__all__ = [
    "EdgeSpec",
    "JobSpec",
    "Pins",
    "ProjectSpec",
    "TriggerSpec",
    "WorkflowSpec",
    "desired_workflow",
    "javascript_adaptors",
    "load",
    "packages_request",
    "parse",
    "render",
    "spec_of_workflow",
]
