"""``fulmen pull`` over a hand-written file keeps its layout: comments, key order, quoting
and block styles, inline ``body: |`` blocks, and keys the pulled document leaves out as
defaults (an explicit ``adaptor: common``). Only what changed on the server changes in the
file (issue 21: a pull rewrote the whole file, inline bodies quoted or moved to new files).

The pulled project is rendered as a fresh document first (render.py) and merged into the
local file's round-trip tree (ruamel.yaml keeps what PyYAML drops: comments, styles, order):
mappings key by key, lists item by item matched on what names an item (a workflow's job by
its name, a trigger by its name or type, an edge by its ends), scalars replaced only when
their value differs. The result is read back and compared with the pulled project; if it
does not say the same thing (a key kept as a default that is no default there), the merge is
tried again dropping what the fresh document leaves out, and failing that the fresh
rendering is written as before: the layout is kept only where it is certainly right.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import LiteralScalarString

from fulmen.errors import ProjectFileError
from fulmen.project.spec import ProjectSpec, parse

__all__ = ["keep_layout"]


def keep_layout(local: str, fresh: str, pulled: ProjectSpec, base: Path) -> str:
    """The local file's text updated to say what ``fresh`` (the pulled project rendered)
    says, in the local file's layout where that reads back as ``pulled``; else ``fresh``.

    ``base`` is the file's folder, where the job files (already written) are read from.
    """
    for drop_missing in (False, True):
        try:
            merged = _merged(local, fresh, drop_missing=drop_missing)
        except YAMLError:
            return fresh
        if _same(merged, pulled, base):
            return merged
    return fresh


def _merged(local: str, fresh: str, *, drop_missing: bool) -> str:
    yaml = _yaml()
    tree = yaml.load(local)
    new = yaml.load(fresh)
    if not isinstance(tree, CommentedMap) or not isinstance(new, CommentedMap):
        return fresh
    _merge_map(tree, new, drop_missing=drop_missing)
    out = io.StringIO()
    yaml.dump(tree, out)
    return out.getvalue()


def _same(text: str, pulled: ProjectSpec, base: Path) -> bool:
    try:
        read = parse(text, base=base)
    except ProjectFileError:
        return False
    return _bodies_only(read) == _bodies_only(pulled)


def _bodies_only(spec: ProjectSpec) -> ProjectSpec:
    """``spec`` with where each job's body is written left out: the same project either way."""
    workflows = tuple(
        dataclasses.replace(w, jobs=tuple(dataclasses.replace(j, body_file=None) for j in w.jobs))
        for w in spec.workflows
    )
    return dataclasses.replace(spec, workflows=workflows)


def _yaml() -> YAML:
    yaml = YAML()  # round-trip: comments, order, styles
    yaml.preserve_quotes = True
    yaml.width = 100
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _merge_map(old: CommentedMap, new: CommentedMap, *, drop_missing: bool) -> None:
    if drop_missing:
        for key in [k for k in old if k not in new]:
            del old[key]
    previous_index = -1
    for key, value in new.items():
        if key in old:
            old[key] = _merge(old[key], value, drop_missing=drop_missing)
            previous_index = list(old).index(key)
        else:
            previous_index += 1
            old.insert(previous_index, key, value)


def _merge_seq(old: CommentedSeq, new: CommentedSeq, *, drop_missing: bool) -> None:
    if [_identity(item) for item in old] == [_identity(item) for item in new]:
        for index, item in enumerate(new):  # the same items: each in place, comments kept
            merged = _merge(old[index], item, drop_missing=drop_missing)
            if merged is not old[index]:
                old[index] = merged
        return
    olds = {_identity(item): item for item in old}
    old[:] = [
        _merge(olds[_identity(item)], item, drop_missing=drop_missing)
        if _identity(item) in olds
        else item
        for item in new
    ]


def _merge(old: Any, new: Any, *, drop_missing: bool) -> Any:
    if isinstance(old, CommentedMap) and isinstance(new, CommentedMap):
        _merge_map(old, new, drop_missing=drop_missing)
        return old
    if isinstance(old, CommentedSeq) and isinstance(new, CommentedSeq):
        _merge_seq(old, new, drop_missing=drop_missing)
        return old
    if old == new:
        return old  # the same value: its quoting and block style stay (read back to check)
    if isinstance(new, str) and "\n" in new.rstrip("\n"):
        return LiteralScalarString(new)
    return new


_IDENTITIES: tuple[Callable[[CommentedMap], Hashable | None], ...] = (
    lambda item: ("edge", item.get("from"), item.get("to")) if "from" in item else None,
    lambda item: ("named", item.get("name")) if "name" in item else None,
    lambda item: ("trigger", item.get("type")) if "type" in item else None,
)


def _identity(item: Any) -> Hashable:
    """What names a list item: an edge by its ends, a job or trigger by its name, a trigger
    by its type, a scalar by itself."""
    if isinstance(item, CommentedMap):
        for identity in _IDENTITIES:
            found = identity(item)
            if found is not None:
                return found
        return id(item)
    return ("value", str(item))
