"""``fulmen docs``: the documentation site, built if needed and served on this machine.

The site is built from the sources this Fulmen came with (site.py) into the user's cache
(``$XDG_CACHE_HOME/fulmen/docs``, else ``~/.cache/fulmen/docs``), once per version of them,
then served on 127.0.0.1 until Ctrl-C or SIGTERM, which stop it with exit status 0. The URL
is printed on stdout (``Docs: http://127.0.0.1:8000/``), and a browser opened where there is
a graphical one (a display, macOS, Windows) unless ``--no-browser``: a terminal browser
(``lynx``, ``w3m``) would take over the terminal the URL was printed in.

Without MkDocs and its theme (a plain ``pip install fulmen``), it says in one line how to
get them. The builder and the references written from the code are in this package too
(cli_reference.py, api_reference.py), used by the site's hooks (``docs/hooks/``).
"""

from __future__ import annotations

import signal
import sys
import webbrowser
from pathlib import Path
from types import FrameType

import click

from fulmen.cli.bootstrap import CliError
from fulmen.cli.docs import site
from fulmen.config import default_cache_dir, read_environ
from fulmen.errors import ConfigError

__all__ = ["docs"]


@click.command()
@click.argument("page", required=False, default="")
@click.option(
    "-p",
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="The loopback port to serve the site on (0: any free port).",
)
@click.option("--no-browser", is_flag=True, help="Print the URL only; open no browser.")
@click.option(
    "--rebuild", is_flag=True, help="Build the site again even if its sources have not changed."
)
def docs(page: str, port: int, no_browser: bool, rebuild: bool) -> None:
    """Serve the documentation site on this machine, building it first if needed; PAGE (as
    every command's help names it: reference/cli/run/) is the page to open."""
    missing = site.missing_tools()
    if missing:
        raise CliError("docs", f"needs {' and '.join(missing)}: {site.INSTALL_HINT}", exit_code=1)
    config = site.find_sources()
    if config is None:
        raise CliError("docs", "this installation of Fulmen has no docs sources", exit_code=1)
    environ = read_environ()
    cache = Path(default_cache_dir("docs", environ))
    try:
        if rebuild:
            site.clear(cache)
        built = site.target(config, cache)
        if not site.is_built(built):
            click.echo(f"fulmen docs: building the site into {built} (a few seconds)", err=True)
            site.build(config, built, environ)
        httpd = site.server(built, port)
    except ConfigError as exc:
        raise CliError("docs", exc.message, exit_code=1) from exc
    where = page.split("#", 1)[0].strip("/")
    if where and not (built / where / "index.html").is_file():
        httpd.server_close()
        raise CliError("docs", f"the site has no page {page} (fulmen docs lists its pages)")
    host, bound = httpd.server_address[:2]
    url = f"http://{host!s}:{bound}/{page.lstrip('/')}"
    click.echo(f"Docs: {url}  (Ctrl-C stops)")
    sys.stdout.flush()
    if not no_browser and _graphical(environ):
        webbrowser.open(url)
    signal.signal(signal.SIGTERM, _stop)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


def _graphical(environ: dict[str, str]) -> bool:
    """Whether a browser opened here would show a window rather than take the terminal."""
    if sys.platform in ("darwin", "win32"):
        return True
    return any(environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"))


def _stop(number: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
