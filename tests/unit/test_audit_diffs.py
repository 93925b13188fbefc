"""fulmen.coordinator.diffs: what changed between two documents of the audit trail, as the
lines a reviewer reads (a job body's edit is that line, not the whole body)."""

from __future__ import annotations

from typing import Any

from fulmen.coordinator.diffs import MAX_LINES, DiffLine, as_text, lines, unified


def workflow(body: str, *, name: str = "nightly") -> dict[str, Any]:
    return {
        "id": "w1",
        "name": name,
        "jobs": [{"id": "j1", "name": "count", "body": body, "adaptor": "common"}],
        "version": 3,
    }


BODY = "@fn\ndef count(state):\n    state['n'] = 1\n    return state\n"


def test_a_job_body_edit_is_the_lines_that_changed() -> None:
    edited = BODY.replace("state['n'] = 1", "state['n'] = 2")
    found = lines(workflow(BODY), workflow(edited), name="workflow nightly")
    assert found is not None
    assert found[:2] == [
        DiffLine("header", "--- workflow nightly (before)"),
        DiffLine("header", "+++ workflow nightly (after)"),
    ]
    changed = [(line.kind, line.text) for line in found if line.kind in ("added", "removed")]
    assert changed == [
        ("removed", "-          state['n'] = 1"),  # the body's line, indented under body: |
        ("added", "+          state['n'] = 2"),
    ]
    assert any(line.kind == "hunk" for line in found)
    text = unified(workflow(BODY), workflow(edited), name="workflow nightly")
    assert text == "".join(f"{line.text}\n" for line in found)


def test_the_yaml_keeps_the_documents_order_and_code_as_lines() -> None:
    text = as_text(workflow(BODY))
    assert text.index("id: w1") < text.index("name: nightly") < text.index("jobs:")
    assert "    body: |\n      @fn\n      def count(state):\n" in text


def test_nothing_changed_no_document_or_too_large() -> None:
    assert unified(workflow(BODY), workflow(BODY)) == ""
    assert unified(None, workflow(BODY)) is None
    assert unified(workflow(BODY), None) is None
    huge = "x = 1\n" * MAX_LINES
    assert unified(workflow(huge), workflow(huge + "y = 2\n")) is None


def test_a_removed_line_that_starts_like_a_header_is_a_removed_line() -> None:
    found = lines({"note": "a\n-- b\nc\n"}, {"note": "a\nc\n"})
    assert found is not None
    assert [line.kind for line in found if "-- b" in line.text] == ["removed"]
