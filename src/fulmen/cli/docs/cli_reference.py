"""The CLI reference, written from the click commands themselves (``docs/hooks/reference.py``
puts it in the site): one page per ``fulmen`` command, with its subcommands on the same page,
each with its help, its usage line and every option as ``--help`` shows it, so the reference
cannot drift from the code. ``fulmen`` is a lazy group (``fulmen.cli.LazyGroup``): the walk
asks each group for its commands by name, which imports them all.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass

import click

from fulmen.cli.docs.markdown import cell, paragraphs

__all__ = ["Entry", "anchor", "index", "pages", "walk"]


@dataclass(frozen=True)
class Entry:
    """One command of the tree: its words (``("fulmen", "server", "token", "create")``), the
    command, and a context to render it in."""

    path: tuple[str, ...]
    command: click.Command
    context: click.Context

    @property
    def name(self) -> str:
        return " ".join(self.path)


def walk(root: click.Command, name: str = "fulmen") -> Iterator[Entry]:
    """Every visible command under ``root``, ``root`` first, depth first, in ``--help``'s order."""
    yield from _walk(root, click.Context(root, info_name=name), (name,))


def _walk(command: click.Command, context: click.Context, path: tuple[str, ...]) -> Iterator[Entry]:
    yield Entry(path, command, context)
    if not isinstance(command, click.Group):
        return
    for name in command.list_commands(context):
        sub = command.get_command(context, name)
        if sub is None or sub.hidden:
            continue
        yield from _walk(sub, click.Context(sub, parent=context, info_name=name), (*path, name))


def anchor(entry: Entry) -> str:
    """The id of a command's heading: ``fulmen-server-token-create``."""
    return "-".join(entry.path)


def pages(root: click.Command, name: str = "fulmen") -> dict[str, str]:
    """``{command: Markdown}``: a page for each of ``root``'s commands, its subcommands on it."""
    result: dict[str, list[str]] = {}
    for entry in walk(root, name):
        if len(entry.path) < 2:
            continue
        result.setdefault(entry.path[1], []).append(_section(entry, level=len(entry.path) - 1))
    return {command: "\n".join(sections) for command, sections in result.items()}


def index(root: click.Command, name: str = "fulmen") -> str:
    """The commands, one line each linking to its page, and the options of ``name`` itself."""
    entries = list(walk(root, name))
    top = entries[0]
    lines = ["| Command | What it does |", "| --- | --- |"]
    for entry in entries[1:]:
        if len(entry.path) == 2:
            link = f"[`{entry.name}`]({entry.path[1]}.md)"
            lines.append(f"| {link} | {cell(_short(entry.command))} |")
    return "\n".join([*lines, "", _usage(top), "", *_options(top)])


def _section(entry: Entry, level: int) -> str:
    parts = [f"{'#' * level} {entry.name} {{#{anchor(entry)}}}", ""]
    text = _help(entry.command)
    if text:
        parts += [paragraphs(text), ""]
    parts += [_usage(entry), ""]
    options = _options(entry)
    if options:
        parts += [*options, ""]
    if entry.command.epilog:  # after the options, as --help shows it (fulmen run's exit statuses)
        parts += [paragraphs(inspect.cleandoc(entry.command.epilog)), ""]
    if isinstance(entry.command, click.Group):
        parts += ["| Command | What it does |", "| --- | --- |"]
        for name in entry.command.list_commands(entry.context):
            sub = entry.command.get_command(entry.context, name)
            if sub is not None and not sub.hidden:
                target = anchor(Entry((*entry.path, name), sub, entry.context))
                parts.append(f"| [`{name}`](#{target}) | {cell(_short(sub))} |")
        parts.append("")
    return "\n".join(parts)


def _usage(entry: Entry) -> str:
    return "```text\n" + entry.command.get_usage(entry.context) + "\n```"


def _options(entry: Entry) -> list[str]:
    rows = []
    for param in entry.command.get_params(entry.context):
        if not isinstance(param, click.Option):  # arguments are in the usage line
            continue
        record = param.get_help_record(entry.context)
        if record is not None:
            flags, text = record
            rows.append(f"| `{flags}` | {cell(text)} |")
    if not rows:
        return []
    return ["| Option | Description |", "| --- | --- |", *rows]


def _help(command: click.Command) -> str:
    return inspect.cleandoc(command.help or "").partition("\f")[0].strip()


def _short(command: click.Command) -> str:
    return command.get_short_help_str(limit=200)
