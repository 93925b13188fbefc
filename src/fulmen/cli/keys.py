"""``fulmen keys``: generate the worker secret and the run-token key pair."""

from __future__ import annotations

from pathlib import Path

import click

from fulmen import keys as keyring
from fulmen.cli.bootstrap import CliError
from fulmen.errors import ConfigError


@click.group()
def keys() -> None:
    """Generate the worker secret and the run-token key pair."""


@keys.command()
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["env", "json"]),
    default="env",
    show_default=True,
    help='NAME="value" lines (a .env file) or one JSON object.',
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write each value to DIR/<VARIABLE> (mode 0600) instead of printing it.",
)
@click.option(
    "--names",
    "naming",
    type=click.Choice(sorted(keyring.NAMINGS)),
    default="current",
    show_default=True,
    help="current: Lightning's and ws-worker's names today; seed: OpenFn's original "
    "Workers page (ATTEMPTS_PRIVATE_KEY, LIGHTNING_PUBLIC_KEY). Fulmen reads both.",
)
def generate(output_format: str, out_dir: Path | None, naming: str) -> None:
    """Print WORKER_SECRET, WORKER_RUNS_PRIVATE_KEY and WORKER_LIGHTNING_PUBLIC_KEY.

    The coordinator (or Lightning) needs the secret and the private key; every worker needs
    the secret and the public key.
    """
    generated = keyring.generate()
    if out_dir is None:
        render = keyring.render_json if output_format == "json" else keyring.render_env
        click.echo(render(generated, naming), nl=False)
        return
    try:
        paths = keyring.write_files(generated, out_dir, naming)
    except ConfigError as error:
        raise CliError("keys", error.message, exit_code=1) from error
    secret, private, _ = keyring.NAMINGS[naming]
    needed = {secret: "the coordinator and the worker", private: "the coordinator"}
    for path in paths:
        click.echo(f"wrote {path} (for {needed.get(path.name, 'the worker')})")
