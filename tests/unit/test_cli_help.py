"""Every command's help reads as help (issue 21): each option says what it is for, no
reStructuredText from docstrings shows, and ``fulmen run --help`` says what its exit
statuses mean. The tree is walked whole, lazy subcommands and nested groups included, so a
new command or option without words fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator

import click
from click.testing import CliRunner

from fulmen.cli import cli
from fulmen.cli.doclinks import page_of
from fulmen.cli.docs import cli_reference

#: What reStructuredText left in help looks like: ``code``, :role:`x`, .. directive::.
RST = re.compile(r"``|:[a-z]+:`|^\s*\.\. [a-z]+::", re.MULTILINE)


def commands(
    group: click.Command = cli, path: tuple[str, ...] = ("fulmen",)
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, group
    if isinstance(group, click.Group):
        context = click.Context(group)
        for name in group.list_commands(context):
            command = group.get_command(context, name)
            assert command is not None, name
            yield from commands(command, (*path, name))


def test_every_option_says_what_it_is_for() -> None:
    missing = [
        f"{' '.join(path)} {param.opts[0]}"
        for path, command in commands()
        for param in command.params
        if isinstance(param, click.Option) and not (param.help or "").strip()
    ]
    assert not missing, f"options without help: {missing}"


def test_no_help_shows_restructured_text() -> None:
    runner = CliRunner()
    shown = []
    for path, _ in commands():
        result = runner.invoke(cli, [*path[1:], "--help"])
        assert result.exit_code == 0, (path, result.output)
        if RST.search(result.output):
            shown.append(" ".join(path))
    assert not shown, f"reStructuredText in the help of: {shown}"


def test_run_help_says_what_each_exit_status_means() -> None:
    output = CliRunner().invoke(cli, ["run", "--help"]).output
    statuses = output.split("Exit status:")[1]
    assert [line.split()[0] for line in statuses.splitlines() if re.match(r"\s+\d+ ", line)] == [
        "0",
        "1",
        "2",
        "70",
    ]


def test_every_help_ends_with_its_page_in_the_docs() -> None:
    """Issue 21: each command's help ends with a link to its page (``fulmen docs PAGE``), the
    page and heading the CLI reference writes for it (cli/docs/cli_reference.py)."""
    headings = {entry.path: cli_reference.anchor(entry) for entry in cli_reference.walk(cli)}
    runner = CliRunner()
    for path, _ in commands():
        output = runner.invoke(cli, [*path[1:], "--help"]).output
        last = output.rstrip().splitlines()[-1].strip()
        assert last == f"Docs: fulmen docs {page_of(path)}", (path, last)
        if len(path) > 2:
            assert page_of(path).endswith(f"#{headings[path]}")
