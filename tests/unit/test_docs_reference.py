"""The references written from the code: every command and option of the CLI is in the CLI
reference, with its description, and text from the code cannot break the Markdown."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from fulmen.cli import COMMANDS, cli
from fulmen.cli.docs import cli_reference
from fulmen.cli.docs.markdown import cell, escape, paragraphs


def commands(
    command: click.Command, context: click.Context, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], click.Command, click.Context]]:
    """Every visible command, walked here independently of the reference's own walk: a
    group's commands by name, which loads the lazy ones (fulmen.cli.LazyGroup)."""
    yield path, command, context
    if isinstance(command, click.Group):
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            assert sub is not None, f"{' '.join(path)} lists {name} but cannot load it"
            if not sub.hidden:
                child = click.Context(sub, parent=context, info_name=name)
                yield from commands(sub, child, (*path, name))


ALL = list(commands(cli, click.Context(cli, info_name="fulmen"), ("fulmen",)))
PAGES = cli_reference.pages(cli)


def section(path: tuple[str, ...]) -> str:
    """The part of a command's page about that command: its heading to the next heading."""
    page = PAGES[path[1]]
    heading = re.search(rf"^#+ {re.escape(' '.join(path))} {{#[^}}]+}}$", page, re.MULTILINE)
    assert heading, f"no heading for {' '.join(path)} in reference/cli/{path[1]}.md"
    rest = page[heading.end() :]
    following = re.search(r"^#+ ", rest, re.MULTILINE)
    return rest[: following.start()] if following else rest


def test_every_top_level_command_has_a_page_in_the_order_of_help() -> None:
    assert list(PAGES) == list(COMMANDS)


def test_nested_groups_are_walked() -> None:
    names = {" ".join(path) for path, _, _ in ALL}
    assert {"fulmen server token create", "fulmen keys generate", "fulmen docs"} <= names


@pytest.mark.parametrize("path", [path for path, _, _ in ALL[1:]], ids=" ".join)
def test_every_command_and_option_is_in_the_reference(path: tuple[str, ...]) -> None:
    _, command, context = next(entry for entry in ALL if entry[0] == path)
    text = section(path)
    assert f"Usage: {' '.join(path)}" in text
    for param in command.get_params(context):
        if not isinstance(param, click.Option) or param.hidden:
            continue
        rows = [
            line
            for line in text.splitlines()
            if line.startswith("| `") and all(opt in line.split("|")[1] for opt in param.opts)
        ]
        assert rows, f"{' '.join(path)}: {'/'.join(param.opts)} is not in the reference"
        description = rows[0].split(" | ", 1)[1].strip(" |")
        # click's own additions ([default: 20], [required], [x>=1]) are not a description
        said = re.sub(r"\\\[[^\]]*\\\]", "", description).strip()
        assert said, f"{' '.join(path)}: {'/'.join(param.opts)} has no help text"


def test_an_epilog_is_kept_as_help_shows_it() -> None:
    command = cli.get_command(click.Context(cli), "run")
    assert command is not None and command.epilog
    first = next(line for line in command.epilog.splitlines() if line.strip("\b \n"))
    assert f"```text\n{first.strip()}" in section(("fulmen", "run"))


def test_a_group_links_each_of_its_commands() -> None:
    text = section(("fulmen", "server", "token"))
    for name in ("create", "list", "revoke"):
        assert f"[`{name}`](#fulmen-server-token-{name})" in text


def test_the_index_links_every_page() -> None:
    index = cli_reference.index(cli)
    for name in PAGES:
        assert f"[`fulmen {name}`]({name}.md)" in index


def test_help_text_cannot_break_the_markdown() -> None:
    assert escape("DIR/<VARIABLE> a|b *x* snake_case") == (
        r"DIR/\<VARIABLE\> a\|b \*x\* snake\_case"
    )
    assert escape("the part after ``fmn_`` or `a|b`") == "the part after ``fmn_`` or `a|b`"
    assert cell("two\n   lines") == "two lines"
    assert paragraphs("one\nparagraph\n\n\b\nkept  as\n  it is") == (
        "one paragraph\n\n```text\nkept  as\n  it is\n```"
    )


# -- the hand-written pages name only what exists ---------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
PAGES_WRITTEN = sorted((ROOT / "docs").rglob("*.md"))
SOURCE = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "src" / "fulmen").rglob("*.py"))
#: A variable of Fulmen's, or of Lightning's that Fulmen reads (uv's and npm's own are theirs).
VARIABLE = re.compile(
    r"\b(?:FULMEN|WORKER|LIGHTNING|ATTEMPTS|DEPLOYED|LISTEN|MAX|RUN|WEBHOOK)_[A-Z0-9_]*[A-Z0-9]\b"
)
#: ``fulmen`` followed by words: a command line, in a code span or block.
COMMAND = re.compile(r"(?<![-/\w.])fulmen((?: [a-z][a-z0-9-]*)+)((?: [^`\n]*)?)")


def test_every_variable_the_pages_name_is_read_by_the_code() -> None:
    # a command's arguments, as its usage line writes them (fulmen runs show RUN_ID)
    placeholders = {
        param.human_readable_name
        for _, command, _ in ALL
        for param in command.params
        if isinstance(param, click.Argument)
    }
    unknown = {
        f"{page.relative_to(ROOT)}: {name}"
        for page in PAGES_WRITTEN
        for name in VARIABLE.findall(page.read_text(encoding="utf-8"))
        if name not in SOURCE and name not in placeholders
    }
    assert not unknown, sorted(unknown)


def test_every_command_and_option_the_pages_name_exists() -> None:
    problems = []
    for page in PAGES_WRITTEN:
        for match in COMMAND.finditer(page.read_text(encoding="utf-8")):
            words, rest = match[1].split(), match[2]
            command, context = cli, click.Context(cli, info_name="fulmen")
            path = ["fulmen"]
            while words and isinstance(command, click.Group):
                sub = command.get_command(context, words[0])
                if sub is None:
                    problems.append(f"{page.name}: fulmen {' '.join(path[1:] + words[:1])}")
                    break
                path.append(words.pop(0))
                command, context = sub, click.Context(sub, parent=context, info_name=path[-1])
            known = {
                opt for p in command.get_params(context) for opt in (*p.opts, *p.secondary_opts)
            }
            for flag in re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", " ".join(words) + rest):
                if flag not in known and not flag.startswith("-F"):
                    problems.append(f"{page.name}: {' '.join(path)} {flag}")
    assert not problems, problems
