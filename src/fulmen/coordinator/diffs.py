"""What changed between two documents of the audit trail (issue 18), as a unified diff of
their YAML. Pure: no I/O.

*Why YAML.* A workflow's job bodies are code over many lines; in JSON each body is one long
string with ``\\n`` in it, and a one-line edit would show as the whole body replaced. YAML
writes such a string as a literal block, one line of code per line of text, so the diff
shows the lines that changed, as a code review would. Keys keep the document's order (the
REST API's), so a diff reads like the document.

*Why on reading.* The trail keeps the documents before and after, which are the facts; the
diff is derived from them whenever a record is shown (computed here, not stored), so it
costs nothing to keep and a better rendering later applies to every record, old ones too.
Documents too large to compare cheaply (:data:`MAX_LINES`) are not diffed: the record still
has them whole.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import yaml

__all__ = ["MAX_LINES", "DiffLine", "as_text", "lines", "unified"]

#: The most lines (both documents together) a diff is made of; beyond, none is made.
MAX_LINES: Final = 20_000
#: Lines of context around each change, as ``diff -u`` shows them.
CONTEXT: Final = 3

LineKind = Literal["header", "hunk", "added", "removed", "context"]


@dataclass(frozen=True, slots=True)
class DiffLine:
    """One line of a diff and what it is, for a page to style (added, removed, ...)."""

    kind: LineKind
    text: str


class _Dumper(yaml.SafeDumper):
    """Block style, a list indented under its key, text over several lines as a literal
    block (``|``), anything else as PyYAML writes it."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def as_text(document: Mapping[str, Any]) -> str:
    """``document`` as YAML, its keys in their order."""
    return yaml.dump(dict(document), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def unified(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, *, name: str = ""
) -> str | None:
    """The unified diff of two documents' YAML (``name`` in its header lines); ``""`` when
    they are the same, ``None`` when one is missing or they are too large to compare."""
    found = lines(before, after, name=name)
    return None if found is None else "".join(f"{line.text}\n" for line in found)


def lines(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, *, name: str = ""
) -> list[DiffLine] | None:
    """:func:`unified`, line by line with each line's kind."""
    if before is None or after is None:
        return None
    old = as_text(before).splitlines()
    new = as_text(after).splitlines()
    if len(old) + len(new) > MAX_LINES:
        return None
    label = name or "document"
    diff = difflib.unified_diff(
        old, new, f"{label} (before)", f"{label} (after)", n=CONTEXT, lineterm=""
    )
    # The first two lines name the documents; after them, a line's first character says
    # what it is (a removed line of YAML may itself start with "--").
    return [
        DiffLine("header" if index < 2 else _kind(line), line) for index, line in enumerate(diff)
    ]


def _kind(line: str) -> LineKind:
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "added"
    if line.startswith("-"):
        return "removed"
    return "context"
