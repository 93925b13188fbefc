"""Names as users type them (cli/names.py): an id first, then a name, then a name in another
case; a name several things share is refused with their ids, never guessed."""

from __future__ import annotations

import pytest

from fulmen.cli.bootstrap import CliError
from fulmen.cli.names import pick

ITEMS = [
    {"id": "w1", "name": "count-and-report", "project_id": "p1"},
    {"id": "w2", "name": "Sync", "project_id": "p1"},
    {"id": "w3", "name": "sync", "project_id": "p2"},
    {"id": "w4", "name": "twice", "project_id": "p1"},
    {"id": "w5", "name": "twice", "project_id": "p2"},
    {"id": "count-and-report", "name": "an id that is another's name", "project_id": "p2"},
]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("w1", "w1"),
        ("count-and-report", "count-and-report"),  # an id wins over a name
        ("Sync", "w2"),  # the exact name wins over the same name in another case
        ("sync", "w3"),
        ("COUNT-AND-REPORT", "w1"),  # only in another case: found
    ],
)
def test_an_id_then_a_name_then_a_name_in_any_case(text: str, found: str) -> None:
    assert pick("runs list", "workflow", text, ITEMS)["id"] == found


def test_a_shared_name_is_refused_with_the_ids() -> None:
    with pytest.raises(CliError) as refused:
        pick("runs list", "workflow", "twice", ITEMS, where=lambda w: f" ({w['project_id']})")
    assert refused.value.lines == ["2 workflows are named 'twice': w4 (p1), w5 (p2); give the id"]


def test_no_match_names_what_there_is() -> None:
    with pytest.raises(CliError) as refused:
        pick("runs list", "project", "nope", [{"id": "p1", "name": "examples"}])
    assert refused.value.lines == ["no project is named 'nope' (projects: examples)"]
    assert refused.value.exit_code == 2
