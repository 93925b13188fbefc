"""The sandbox flags of ``fulmen run``, ``fulmen worker`` and ``fulmen runner`` (issue 12).

``--isolation`` is the least the operator accepts: below it the command does not start
(README, "Security model"); ``--network`` and ``--allow-net`` say what runs reach. Each flag
wins over its variable (``FULMEN_ISOLATION``, ``FULMEN_NETWORK``, ``FULMEN_ALLOW_NET``). A
bad value is a ConfigError naming the flag, and a sandbox that cannot give the level asked
for is a SandboxError saying what is missing; each command reports both as it reports its
other start-up errors, one line and exit status 2.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import click

from fulmen.config import ISOLATION_CHOICES, NETWORK_CHOICES, SandboxSettings, choice
from fulmen.errors import SandboxError

__all__ = ["sandbox_failure", "sandbox_options", "sandbox_settings"]

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = (
    click.option(
        "--isolation",
        metavar="|".join(ISOLATION_CHOICES),
        help="Refuse to start below this sandbox level [FULMEN_ISOLATION; best: what the "
        "host gives].",
    ),
    click.option(
        "--network",
        metavar="|".join(NETWORK_CHOICES),
        help="What runs reach [FULMEN_NETWORK; outside: all but the host's loopback].",
    ),
    click.option(
        "--allow-net",
        metavar="HOST:PORT",
        multiple=True,
        help="A loopback port runs may reach all the same; repeatable [FULMEN_ALLOW_NET, "
        "comma-separated].",
    ),
)


def sandbox_options(command: F) -> F:
    """Add ``--isolation``, ``--network`` and ``--allow-net`` to a click command."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def sandbox_settings(settings: SandboxSettings, flags: dict[str, Any]) -> SandboxSettings:
    """``settings`` (from the environment) with the sandbox flags laid over them; the three
    flags are taken out of ``flags``, which may lack them.

    Raises:
        ConfigError: ``--isolation`` or ``--network`` is not one of its choices.
    """
    isolation = flags.pop("isolation", None)
    network = flags.pop("network", None)
    allow_net = flags.pop("allow_net", None)
    given: dict[str, Any] = {}
    if isolation is not None:
        given["isolation"] = choice(isolation, ISOLATION_CHOICES, "--isolation")
    if network is not None:
        given["network"] = choice(network, NETWORK_CHOICES, "--network")
    if allow_net:
        given["allow_net"] = tuple(allow_net)
    return dataclasses.replace(settings, **given)


def sandbox_failure(exc: SandboxError) -> str:
    """The one line a command prints when its sandbox does not start. A level the host
    cannot give is explained by the sandbox itself: what is missing and why."""
    text = " ".join(exc.message.split())
    if exc.code == "isolation_unavailable":
        return text
    return f"the sandbox did not start: {text}"
