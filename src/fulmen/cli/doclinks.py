"""Each command's ``--help`` ends with where its page is in the docs (issue 21): ``Docs:
fulmen docs reference/cli/server/#fulmen-server-token-create``, the command that opens that
page of the site this Fulmen came with (``fulmen docs``). The pages are the CLI reference's
(cli/docs/cli_reference.py: one per top-level command, a heading per subcommand), so the link
is made from the same words the page is.
"""

from __future__ import annotations

from typing import Final

import click

__all__ = ["PAGES", "link", "page_of"]

#: Where the CLI reference's pages are in the site.
PAGES: Final = "reference/cli"


def page_of(path: tuple[str, ...]) -> str:
    """The page and heading of the command ``path`` (``("fulmen", "server", "token")``)."""
    if len(path) < 2:
        return f"{PAGES}/"
    page = f"{PAGES}/{path[1]}/"
    return page if len(path) == 2 else f"{page}#{'-'.join(path)}"


def link(command: click.Command, path: tuple[str, ...]) -> None:
    """End ``command``'s help, and each of its subcommands', with its docs page (once)."""
    line = f"Docs: fulmen docs {page_of(path)}"
    epilog = command.epilog or ""
    if not epilog.endswith(line):
        command.epilog = f"{epilog}\n\n{line}" if epilog else line
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            link(sub, (*path, name))
