"""The reference of the adaptors that ship with Fulmen (``common``, ``http``, ``collections``),
written from
their modules: each public name with its signature and its docstring, so that a new operation
or a changed argument shows in the docs without anyone editing them."""

from __future__ import annotations

import inspect

from fulmen.adaptors import collections, common, http
from fulmen.cli.docs.markdown import cell

__all__ = ["render"]


def render() -> str:
    """A section per adaptor: a table of its names (``http`` lists only what it adds)."""
    parts = []
    inherited: set[str] = set()
    for name, module in (("common", common), ("http", http)):
        parts += [f"### `{name}`", "", cell(_summary(module)), ""]
        if inherited:
            parts += ["Everything in `common`, and:", ""]
        parts += ["| Name | What it does |", "| --- | --- |"]
        for attribute in module.__all__:
            if attribute in inherited:
                continue
            parts.append(_row(attribute, getattr(module, attribute)))
        parts.append("")
        inherited |= set(module.__all__)
    parts += ["### `collections`", "", cell(_summary(collections)), ""]
    parts += ["| Name | What it does |", "| --- | --- |"]
    for operation in ("get", "set", "remove", "each"):
        parts.append(_row(f"collections.{operation}", getattr(collections, operation)))
    parts.append(_row("CollectionsError", collections.CollectionsError))
    parts.append("")
    return "\n".join(parts)


def _row(name: str, value: object) -> str:
    label = f"`{name}`"
    if inspect.isfunction(value):
        if value.__name__ != name.rpartition(".")[2]:  # an alias, as alter_state is of fn
            return f"| {label} | Another name for `{value.__name__}`. |"
        # annotations are strings here (PEP 563): shown without their quotes
        label = f"`{name}{str(inspect.signature(value)).replace(chr(39), '')}`"
    return f"| {label} | {cell(_summary(value))} |"


def _summary(value: object) -> str:
    """The first paragraph of a docstring."""
    doc = inspect.getdoc(value) or ""
    return doc.split("\n\n", 1)[0]
