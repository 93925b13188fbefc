"""Project files: reading them (every problem named by its key path), writing them back, and
turning them into the REST API's workflow documents while keeping deployed ids."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from fulmen.errors import ProjectFileError
from fulmen.project import (
    EdgeSpec,
    JobSpec,
    ProjectSpec,
    TriggerSpec,
    WorkflowSpec,
    desired_workflow,
    load,
    parse,
    render,
    spec_of_workflow,
)
from fulmen.project.spec import adaptor_problem

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "project.yaml"

SYNC = """
name: demo
credentials: [api]
workflows:
  sync:
    triggers:
      - {type: webhook, reply: after_completion}
      - {type: cron, cron: "*/5 * * * *", timezone: Europe/Paris}
    jobs:
      - {name: fetch, adaptor: http, credential: api, body: "get('/items')"}
      - {name: report, body_file: report.py}
    edges:
      - {from: webhook, to: fetch}
      - {from: cron, to: fetch}
      - {from: fetch, to: report, condition: "state.data.count > 0"}
"""


def problems(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(ProjectFileError) as caught:
        parse(text, base=tmp_path)
    return caught.value.lines()


def test_the_example_project_reads_with_its_job_files() -> None:
    spec = load(EXAMPLES)
    assert spec.name == "examples"
    (workflow,) = spec.workflows
    assert [job.name for job in workflow.jobs] == ["count", "check", "report", "handle-failure"]
    assert all(job.body_file and job.body.strip() for job in workflow.jobs)
    assert [t.type for t in workflow.triggers] == ["webhook", "cron"]
    assert workflow.trigger("cron") == TriggerSpec("cron", "cron", False, "0 * * * *")
    assert EdgeSpec("check", "handle-failure", "on_job_failure") in workflow.edges


def test_defaults_follow_the_source_of_an_edge(tmp_path: Path) -> None:
    (tmp_path / "report.py").write_text("fn(lambda s: s)\n")
    spec = parse(SYNC, base=tmp_path)
    (sync,) = spec.workflows
    assert sync.jobs[0] == JobSpec("fetch", "get('/items')", "http", "api")
    assert sync.jobs[1] == JobSpec("report", "fn(lambda s: s)\n", body_file="report.py")
    assert sync.trigger("webhook") == TriggerSpec("webhook", reply="after_completion")
    assert [e.condition for e in sync.edges] == ["always", "always", "state.data.count > 0"]
    assert spec.credentials == ("api",)


def test_every_problem_is_reported_with_the_path_of_its_key(tmp_path: Path) -> None:
    text = """
name: demo
colour: blue
workflows:
  sync:
    triggers:
      - {type: webhook, cron: "* * * * *"}
      - {type: cron, cron: "61 * * * *"}
      - {type: cron, cron: "0 * * * *", timezone: Mars/Olympus}
      - {type: kafka}
    jobs:
      - {name: fetch, body: "x", credential: api}
      - {name: load, adaptor: "@openfn/language-salesforce@4.0.0", language: python, body: "x"}
      - {name: fetch, body_file: missing.py}
      - {name: both, body: "x", body_file: x.py}
      - {adaptor: common}
      - {name: twice, body: "x", credential: api, keychain: sites}
    edges:
      - {from: nowhere, to: load}
      - {from: fetch, to: nobody}
      - {from: fetch, to: load, condition: "state.data >"}
"""
    found = problems(text, tmp_path)
    expected = [
        "colour: unknown key",
        "workflows.sync.triggers[0].cron: only a cron trigger has one",
        "workflows.sync.triggers[1].cron: '61 * * * *'",
        "workflows.sync.triggers[2].timezone: 'Mars/Olympus' is not an IANA time zone",
        "workflows.sync.triggers[3].type: must be one of webhook, cron, not 'kafka'",
        "workflows.sync.triggers[2].name: 'cron' is used twice (a trigger is named by its type",
        "workflows.sync.jobs[0].credential: 'api' is not listed under credentials",
        "workflows.sync.jobs[1].adaptor: unknown adaptor '@openfn/language-salesforce@4.0.0'",
        "workflows.sync.jobs[2].body_file: cannot read 'missing.py'",
        "workflows.sync.jobs[3].body_file: give body or body_file, not both",
        "workflows.sync.jobs[4].name: is required",
        "workflows.sync.jobs[4].body: is required (or body_file)",
        "workflows.sync.jobs[5].credential: 'api' is not listed under credentials",
        "workflows.sync.jobs[5].keychain: name a credential or a keychain, not both",
        "workflows.sync.edges[0].from: no trigger or job is named 'nowhere'",
        "workflows.sync.edges[1].to: no job is named 'nobody'",
        "workflows.sync.edges[2].condition: always, on_job_success, on_job_failure or a Python",
    ]
    for line in expected:
        assert any(problem.startswith(line) for problem in found), (line, found)
    assert len(found) == len(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- just\n- a list\n", "must be an object, not a list"),
        ("name: [1\n", "line 2, column 1: expected ',' or ']'"),
        ("workflows: {}\n", "name: is required"),
        ("name: x\nworkflows: [a]\n", "workflows: must be a mapping of names to workflows"),
        ("name: x\nworkflows:\n  w: {}\n", "workflows.w.jobs: a workflow needs at least one job"),
        ("name: x\nconcurrency: 0\n", "concurrency: must be at least 1"),
        ("name: x\ncredentials: [a, a]\n", "credentials[1]: 'a' is listed twice"),
        (  # a cycle is refused before anything is sent (issue 21)
            "name: x\nworkflows:\n  w:\n    jobs: [{name: a, body: x}, {name: b, body: x}]\n"
            "    edges: [{from: a, to: b}, {from: b, to: a}]\n",
            "workflows.w.edges: the edges make a cycle: a -> b -> a",
        ),
    ],
)
def test_malformed_files(text: str, expected: str, tmp_path: Path) -> None:
    assert any(expected in line for line in problems(text, tmp_path)), problems(text, tmp_path)


@pytest.mark.parametrize(
    ("name", "known"),
    [
        ("common", True),
        ("http", True),
        ("@openfn/language-http@6.5.1", True),
        ("@openfn/language-common@latest", True),
        ("my_company.adaptors.crm", True),
        ("acme-adaptor", True),  # an entry point's name
        ("pandas@2.2.3", True),
        ("pandas@latest", True),
        ("pandas@>=2,<3", True),
        ("pandas[sql]>=2", True),
        ("@openfn/language-dhis2@5.0.0", False),
        ("not a module", False),
        ("pandas @ file:///tmp/pandas.whl", False),
    ],
)
def test_python_adaptor_names(name: str, known: bool) -> None:
    """fulmen.python_requirements decides; the file reader says what it says."""
    assert (adaptor_problem(name) is None) is known


def test_a_rendered_file_reads_back_the_same(tmp_path: Path) -> None:
    (tmp_path / "report.py").write_text("@fn\ndef report(state):\n    return state\n")
    spec = parse(SYNC, base=tmp_path)
    text, files = render(spec)
    assert files == {"report.py": "@fn\ndef report(state):\n    return state\n"}
    out = tmp_path / "out"
    out.mkdir()
    for name, body in files.items():
        (out / name).write_text(body)
    assert parse(text, base=out) == spec
    assert "adaptor: common" not in text  # defaults are left out
    assert "- {from: webhook, to: fetch}" in text  # edges one per line


def test_a_multi_line_inline_body_goes_to_a_file_named_after_its_job(tmp_path: Path) -> None:
    body = "@fn\ndef a(state):\n    return state\n"
    job = JobSpec("shared", body)
    spec = ProjectSpec(
        "p",
        (
            WorkflowSpec("one", (job, JobSpec("short", "fn(lambda s: s)"))),
            WorkflowSpec("two", (job,)),
        ),
    )
    text, files = render(spec)
    assert set(files) == {"one-shared.py", "two-shared.py"}
    document = yaml.safe_load(text)
    assert document["workflows"]["one"]["jobs"][1] == {"name": "short", "body": "fn(lambda s: s)"}


def same_workflow(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether ``desired`` keeps everything ``existing`` has that it names (each item of a
    list in the same order): what an unchanged file's document must do, so that the
    coordinator finds the workflow as wanted and saves no new version."""
    for key, want in desired.items():
        have = existing.get(key)
        if isinstance(want, list):
            if not isinstance(have, list) or len(have) != len(want):
                return False
            for got, wanted in zip(have, want, strict=True):
                if any(got.get(field) != value for field, value in wanted.items()):
                    return False
        elif have != want:
            return False
    return True


def ids() -> itertools.count[int]:
    return itertools.count(1)


def test_a_document_keeps_the_deployed_ids_of_what_the_file_still_names(tmp_path: Path) -> None:
    (tmp_path / "report.py").write_text("fn(lambda s: s)\n")
    spec = parse(SYNC, base=tmp_path).workflows[0]
    counter = ids()
    first = desired_workflow(spec, None, {"api": "cred-1"}, lambda: f"id-{next(counter)}")
    assert first["jobs"][0]["credential_id"] == "cred-1"
    assert first["edges"][2]["source_job_id"] == first["jobs"][0]["id"]
    deployed = {**first, "version": 1, "snapshot_id": "s", "project_id": "p"}
    assert same_workflow(deployed, desired_workflow(spec, deployed, {"api": "cred-1"}))

    renamed = WorkflowSpec(
        spec.name,
        (spec.jobs[0], JobSpec("summary", "fn(lambda s: s)")),
        spec.triggers,
        (spec.edges[0], spec.edges[1], EdgeSpec("fetch", "summary", "on_job_success")),
    )
    second = desired_workflow(renamed, deployed, {"api": "cred-1"}, lambda: "new")
    assert not same_workflow(deployed, second)
    assert second["id"] == first["id"]
    assert [t["id"] for t in second["triggers"]] == [t["id"] for t in first["triggers"]]
    assert second["jobs"][0]["id"] == first["jobs"][0]["id"]
    assert second["jobs"][1]["id"] == "new"
    assert [e["id"] for e in second["edges"][:2]] == [e["id"] for e in first["edges"][:2]]


def test_a_deployed_document_becomes_the_spec_it_came_from(tmp_path: Path) -> None:
    (tmp_path / "report.py").write_text("fn(lambda s: s)\n")
    spec = parse(SYNC, base=tmp_path).workflows[0]
    document = desired_workflow(spec, None, {"api": "cred-1"})
    pulled = spec_of_workflow(document, {"cred-1": "api"}, previous=spec)
    assert pulled == spec
    bare = spec_of_workflow(document, {"cred-1": "api"})
    assert [t.name for t in bare.triggers] == ["webhook", "cron"]
    assert bare.jobs[1].body_file is None


def test_settings_made_through_the_api_survive_a_deploy(tmp_path: Path) -> None:
    (tmp_path / "report.py").write_text("fn(lambda s: s)\n")
    spec = parse(SYNC, base=tmp_path).workflows[0]
    first = desired_workflow(spec, None, {"api": "cred-1"})
    deployed = {
        **first,
        "version": 3,
        "retry": {"max_retries": 2},  # a setting the file has no words for
        "triggers": [{**t, "cron_cursor": "last_run"} for t in first["triggers"]],
    }
    again = desired_workflow(spec, deployed, {"api": "cred-1"})
    assert again["retry"] == {"max_retries": 2} and "version" not in again
    assert [t["cron_cursor"] for t in again["triggers"]] == ["last_run", "last_run"]
    assert same_workflow(deployed, again)


# -- JavaScript jobs (issue 15) ----------------------------------------------------------------

MIXED = """
name: mixed
workflows:
  sync:
    triggers: [{type: webhook}]
    jobs:
      - {name: fetch, adaptor: "@openfn/language-http@^6", body: "get('/items')"}
      - {name: count, adaptor: common, language: javascript, body_file: count.js}
      - {name: legacy, adaptor: "@openfn/language-common@2.1.1", language: python,
         body: "fn(lambda s: s)"}
      - {name: report, body: "fn(lambda s: s)"}
    edges:
      - {from: webhook, to: fetch}
      - {from: fetch, to: count, condition: "state.data.count > 2 && !state.errors"}
      - {from: count, to: legacy, condition: "state.data?.ok"}
      - {from: legacy, to: report, condition: "state.data['ok']"}
"""


def test_a_job_is_javascript_when_it_says_so_or_its_adaptor_is_openfns(tmp_path: Path) -> None:
    (tmp_path / "count.js").write_text(
        "fn(state => {\n  state.data.count = 3;\n  return state;\n});\n"
    )
    (workflow,) = parse(MIXED, base=tmp_path).workflows
    assert [job.runs_in for job in workflow.jobs] == [
        "javascript",
        "javascript",
        "python",
        "python",
    ]
    assert [job.language for job in workflow.jobs] == [None, "javascript", "python", None]


def test_a_javascript_body_that_does_not_parse_is_named_by_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "count.js").write_text("fn(state => {\n  const x = 1 +;\n  return state;\n});\n")
    text = MIXED.replace("body: \"get('/items')\"", "body: \"get('/items'\"")
    assert problems(text, tmp_path) == [
        "workflows.sync.jobs[0].body: SyntaxError at line 1, column 13: unexpected end of the "
        "source: the '(' at line 1, column 4 is not closed",
        "workflows.sync.jobs[1].body_file: count.js: SyntaxError at line 2, column 15: "
        "unexpected '+'",
    ]


def test_a_condition_is_in_the_language_of_its_source_job(tmp_path: Path) -> None:
    (tmp_path / "count.js").write_text("fn(s => s)\n")
    broken = (
        MIXED.replace("state.data.count > 2 && !state.errors", "state.data.count >")
        .replace("state.data?.ok", "state.data.ok; state.x")
        .replace("state.data['ok']", "state.data?.ok")
    )
    found = problems(broken, tmp_path)
    assert found == [
        "workflows.sync.edges[1].condition: always, on_job_success, on_job_failure or a "
        "JavaScript expression; SyntaxError at line 1, column 19: unexpected end of the source: "
        "'>' needs something after it",
        "workflows.sync.edges[2].condition: always, on_job_success, on_job_failure or a "
        "JavaScript expression; SyntaxError at line 1, column 16: a condition is one "
        "expression, not 2 statements",
        "workflows.sync.edges[3].condition: always, on_job_success, on_job_failure or a "
        "Python expression; SyntaxError at line 1, column 11: invalid syntax",
    ]


@pytest.mark.parametrize(
    ("job", "says"),
    [
        ("{name: a, language: javascript, adaptor: lodash, body: x}", "did you mean"),
        ("{name: a, adaptor: '@openfn/language-common@x y', body: x}", "is not a version"),
        ("{name: a, language: ruby, body: x}", "must be one of python, javascript"),
        (
            "{name: a, adaptor: '@openfn/language-dhis2@5', language: python, body: x}",
            "of Lightning's adaptors a Python job can use common, http and collections",
        ),
        ("{name: a, adaptor: 'pandas@>>2', body: x}", "is not an adaptor a Python job can use"),
        ("{name: a, adaptor: 'pandas @ https://x.org/p.whl', body: x}", "a URL or path is not"),
    ],
)
def test_an_adaptor_must_suit_the_jobs_language(job: str, says: str, tmp_path: Path) -> None:
    text = f"name: p\nworkflows:\n  w:\n    jobs:\n      - {job}\n"
    (found,) = problems(text, tmp_path)
    assert found.startswith("workflows.w.jobs[0].") and says in found, found


def test_a_pulled_file_says_a_language_only_where_the_adaptor_does_not(tmp_path: Path) -> None:
    body = "fn(state => {\n  return state;\n});\n"
    document = {
        "name": "sync",
        "jobs": [
            {"id": "1", "name": "js", "body": body, "adaptor": "@openfn/language-common@3.3.4"}
            | {"language": "javascript", "credential_id": None},
            {"id": "2", "name": "py", "body": "fn(lambda s: s)"}
            | {"adaptor": "@openfn/language-common@2.1.1", "language": "python"},
            {"id": "3", "name": "plain", "body": "fn(lambda s: s)", "adaptor": "common"}
            | {"language": "python"},
        ],
        "triggers": [],
        "edges": [],
    }
    spec = ProjectSpec("p", (spec_of_workflow(document, {}),))
    text, files = render(spec)
    assert files == {"js.js": body}
    jobs = yaml.safe_load(text)["workflows"]["sync"]["jobs"]
    assert jobs == [
        {"name": "js", "adaptor": "@openfn/language-common@3.3.4", "body_file": "js.js"},
        {"name": "py", "adaptor": "@openfn/language-common@2.1.1", "language": "python"}
        | {"body": "fn(lambda s: s)"},
        {"name": "plain", "body": "fn(lambda s: s)"},
    ]
    (tmp_path / "js.js").write_text(body)
    assert [job.runs_in for job in parse(text, base=tmp_path).workflows[0].jobs] == [
        "javascript",
        "python",
        "python",
    ]


def test_a_document_says_each_jobs_language_and_its_resolved_adaptor(tmp_path: Path) -> None:
    (tmp_path / "count.js").write_text("fn(s => s)\n")
    (workflow,) = parse(MIXED, base=tmp_path).workflows
    exact = {
        "@openfn/language-http@^6": "@openfn/language-http@6.5.1",
        "common": "@openfn/language-common@3.3.4",
    }
    document = desired_workflow(workflow, None, {}, adaptors=exact)
    assert [(job["adaptor"], job["language"]) for job in document["jobs"]] == [
        ("@openfn/language-http@6.5.1", "javascript"),
        ("@openfn/language-common@3.3.4", "javascript"),
        ("@openfn/language-common@2.1.1", "python"),  # a Python job's adaptor: as written
        ("common", "python"),
    ]
    deployed = {**document, "version": 1}
    assert same_workflow(deployed, desired_workflow(workflow, deployed, {}, adaptors=exact))
    moved = {**exact, "common": "@openfn/language-common@3.4.0"}  # @latest moved on
    assert not same_workflow(deployed, desired_workflow(workflow, deployed, {}, adaptors=moved))


PACKAGES = """
name: demo
workflows:
  sync:
    jobs:
      - name: fetch
        adaptor: fulmen-probe@latest
        requirements: [fulmen-adaptor-demo>=0.1, "httpx[http2]==0.28.1"]
        body: "fn(lambda s: s)"
      - {name: report, requirements: [rich], body: "fn(lambda s: s)"}
      - {name: count, adaptor: "@openfn/language-common@3.3.4", body: "fn(s => s)"}
"""


def test_a_python_job_lists_its_requirements(tmp_path: Path) -> None:
    (workflow,) = parse(PACKAGES, base=tmp_path).workflows
    assert [job.requirements for job in workflow.jobs] == [
        ("fulmen-adaptor-demo>=0.1", "httpx[http2]==0.28.1"),
        ("rich",),
        (),
    ]
    pinned = {
        "fetch": ("fulmen-probe@2.0.0", ("fulmen-adaptor-demo==0.1.0", "httpx[http2]==0.28.1")),
        "report": ("common", ("rich==13.9.4",)),
        "count": ("@openfn/language-common@3.3.4", ()),
    }
    document = desired_workflow(workflow, None, {}, packages=pinned)
    assert [(job["adaptor"], job["requirements"]) for job in document["jobs"]] == [
        ("fulmen-probe@2.0.0", ["fulmen-adaptor-demo==0.1.0", "httpx[http2]==0.28.1"]),
        ("common", ["rich==13.9.4"]),
        ("@openfn/language-common@3.3.4", []),
    ]
    deployed = {**document, "version": 1}
    assert same_workflow(deployed, desired_workflow(workflow, deployed, {}, packages=pinned))
    moved = {**pinned, "report": ("common", ("rich==14.0.0",))}  # latest moved on
    assert not same_workflow(deployed, desired_workflow(workflow, deployed, {}, packages=moved))


def test_a_pulled_file_lists_requirements_and_reads_back_the_same(tmp_path: Path) -> None:
    document = {
        "name": "sync",
        "jobs": [
            {"id": "1", "name": "fetch", "body": "fn(lambda s: s)", "adaptor": "pandas@2.2.3"}
            | {"language": "python", "requirements": ["httpx==0.28.1", "pandas[sql]==2.2.3"]},
            {"id": "2", "name": "plain", "body": "fn(lambda s: s)", "adaptor": "common"}
            | {"language": "python", "requirements": []},
        ],
        "triggers": [],
        "edges": [],
    }
    spec = ProjectSpec("p", (spec_of_workflow(document, {}),))
    text, _ = render(spec)
    assert "    requirements: [httpx==0.28.1, 'pandas[sql]==2.2.3']\n" in text
    jobs = yaml.safe_load(text)["workflows"]["sync"]["jobs"]
    assert [job.get("requirements") for job in jobs] == [
        ["httpx==0.28.1", "pandas[sql]==2.2.3"],
        None,  # none: left out
    ]
    assert parse(text, base=tmp_path) == spec


@pytest.mark.parametrize(
    ("job", "says"),
    [
        (
            "{name: a, requirements: [httpx, 'httpx>>1'], body: x}",
            "workflows.w.jobs[0].requirements[1]: requirement 'httpx>>1': ",
        ),
        (
            "{name: a, requirements: ['httpx @ https://x.org/h.whl'], body: x}",
            "workflows.w.jobs[0].requirements[0]: requirement 'httpx @ https://x.org/h.whl': a "
            "URL or path is not accepted, only a package the index serves",
        ),
        (
            "{name: a, requirements: httpx, body: x}",
            "workflows.w.jobs[0].requirements: must be a list, not text",
        ),
        (
            "{name: a, requirements: [3], body: x}",
            "workflows.w.jobs[0].requirements[0]: must be text, not a number",
        ),
        (
            "{name: a, adaptor: '@openfn/language-common@3', requirements: [lodash], body: x}",
            "workflows.w.jobs[0].requirements: requirements are for Python jobs; a JavaScript "
            "job's package is its adaptor",
        ),
    ],
)
def test_a_requirement_that_cannot_be_read_is_named_by_its_key(
    job: str, says: str, tmp_path: Path
) -> None:
    text = f"name: p\nworkflows:\n  w:\n    jobs:\n      - {job}\n"
    (found,) = problems(text, tmp_path)
    assert found.startswith(says), found


def test_two_python_jobs_may_not_pin_one_package_at_two_versions(tmp_path: Path) -> None:
    text = """
name: p
workflows:
  w:
    jobs:
      - {name: old, adaptor: fulmen-probe@1.0.0, body: x}
      - {name: new, requirements: [fulmen_probe==2.0.0], body: x}
"""
    assert problems(text, tmp_path) == [
        "workflows.w.jobs: fulmen-probe is pinned at 1.0.0 by job 'old' and at 2.0.0 by job "
        "'new': a workflow's Python jobs share one environment"
    ]
