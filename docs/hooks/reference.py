"""MkDocs hooks: the references that are written from the code rather than by hand.

- The CLI reference: a page per ``fulmen`` command under ``reference/cli/``, from the click
  commands themselves (fulmen.cli.docs.cli_reference); the nav entry
  ``reference/cli/index.md`` becomes a section listing them, and the index page's
  ``<!-- fulmen:cli-index -->`` the table of commands.
- The adaptors that ship with Fulmen: ``<!-- fulmen:adaptors -->`` becomes the public names
  of ``common`` and ``http`` with their signatures and docstrings
  (fulmen.cli.docs.adaptor_reference).
- The REST API reference: ``<!-- fulmen:openapi -->`` in a page becomes the coordinator's
  OpenAPI document as Markdown (fulmen.cli.docs.api_reference), built from the app itself.

Nothing is fetched: the site builds offline from the repository.
"""

from __future__ import annotations

from typing import Any

from mkdocs.structure.files import File, Files

from fulmen.cli import cli
from fulmen.cli.docs import adaptor_reference, api_reference, cli_reference

CLI_DIR = "reference/cli"
CLI_INDEX = f"{CLI_DIR}/index.md"
MARKERS = {
    "<!-- fulmen:adaptors -->": adaptor_reference.render,
    "<!-- fulmen:cli-index -->": lambda: cli_reference.index(cli),
    "<!-- fulmen:openapi -->": lambda: api_reference.render(api_reference.coordinator_openapi()),
}

_pages: dict[str, str] = {}


def on_config(config: Any) -> Any:
    _pages.clear()
    _pages.update(cli_reference.pages(cli))
    section = [CLI_INDEX, *({f"fulmen {name}": f"{CLI_DIR}/{name}.md"} for name in _pages)]
    config["nav"] = _expand(config["nav"], section)
    return config


def _expand(nav: Any, section: list[Any]) -> Any:
    """The nav with the entry that names the CLI index replaced by the commands' section."""
    if isinstance(nav, list):
        return [_expand(item, section) for item in nav]
    if isinstance(nav, dict):
        return {
            title: section if value == CLI_INDEX else _expand(value, section)
            for title, value in nav.items()
        }
    return nav


def on_files(files: Files, config: Any) -> Files:
    for name, markdown in _pages.items():
        files.append(File.generated(config, f"{CLI_DIR}/{name}.md", content=markdown))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
