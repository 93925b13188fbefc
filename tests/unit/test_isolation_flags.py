"""The sandbox flags of ``fulmen run``, ``fulmen worker`` and ``fulmen runner`` (issue 12):
flags over variables, and bad values refused with one line before anything starts."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from fulmen.cli import cli
from fulmen.cli import runner as runner_cli
from fulmen.cli import worker as worker_cli
from fulmen.cli.isolation import sandbox_failure, sandbox_settings
from fulmen.config import (
    ISOLATION_CHOICES,
    NETWORK_CHOICES,
    RunnerSettings,
    SandboxSettings,
    WorkerSettings,
)
from fulmen.errors import ConfigError, SandboxError
from fulmen.sandbox.isolation import LEVELS
from fulmen.sandbox.network import NETWORK_POLICIES

SANDBOX_VARIABLES = {"FULMEN_ISOLATION": None, "FULMEN_NETWORK": None, "FULMEN_ALLOW_NET": None}


def test_the_choices_are_the_sandboxs_own() -> None:
    assert set(ISOLATION_CHOICES) == {*LEVELS[1:], "best"}
    assert NETWORK_CHOICES == NETWORK_POLICIES


def test_flags_win_over_variables_and_leave_the_rest_alone() -> None:
    env = SandboxSettings.from_env(
        {"FULMEN_ISOLATION": "L2", "FULMEN_NETWORK": "none", "FULMEN_ALLOW_NET": "[::1]:80"}
    )
    flags = {"isolation": "L3", "network": None, "allow_net": ("127.0.0.1:1", "localhost:2")}
    assert sandbox_settings(env, flags) == SandboxSettings(
        "L3", "none", ("127.0.0.1:1", "localhost:2")
    )
    assert flags == {}  # taken out, so that the command's own settings never see them
    assert sandbox_settings(env, {"allow_net": ()}) == env  # no --allow-net: the variable's


def test_the_commands_settings_carry_the_sandbox_flags() -> None:
    worker = worker_cli.settings_from(WorkerSettings(), {"capacity": 2, "network": "host"})
    assert worker.capacity == 2 and worker.sandbox == SandboxSettings(network="host")
    runner = runner_cli.settings_from(RunnerSettings(), {"isolation": "L2", "allow_net": ()})
    assert runner.sandbox == SandboxSettings(isolation="L2")


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        ({"isolation": "L4"}, "--isolation must be L3, L2, L1, L0 or best, not 'L4'"),
        ({"network": "bridge"}, "--network must be outside, none or host, not 'bridge'"),
    ],
)
def test_a_bad_flag_is_a_config_error_naming_it(flags: dict[str, str], line: str) -> None:
    with pytest.raises(ConfigError) as info:
        sandbox_settings(SandboxSettings(), flags)
    assert (info.value.code, info.value.message) == ("bad_value", line)


@pytest.mark.parametrize(
    ("command", "prefix"),
    [
        (["run", "examples/hello.py"], "fulmen run: "),
        (["worker"], "fulmen worker: "),
        (["runner"], "fulmen runner: "),
    ],
)
@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--isolation", "L4"], {}, "--isolation must be L3, L2, L1, L0 or best, not 'L4'"),
        (["--network", "bridge"], {}, "--network must be outside, none or host, not 'bridge'"),
        (
            [],
            {"FULMEN_ISOLATION": "max"},
            "FULMEN_ISOLATION must be L3, L2, L1, L0 or best, not 'max'",
        ),
    ],
)
def test_a_bad_value_stops_each_command_with_one_line(
    command: list[str], prefix: str, args: list[str], env: dict[str, str], message: str
) -> None:
    """Nothing starts: the value is refused before any sandbox, socket or key is touched."""
    result = CliRunner().invoke(cli, [*command, *args], env={**SANDBOX_VARIABLES, **env})
    assert result.exit_code == 2
    assert result.output.splitlines() == [prefix + message]


def test_a_refused_level_is_the_sandboxs_own_line() -> None:
    refused = SandboxError(
        "The sandbox gives isolation L2, below the L3 asked for. Missing: network: the\n"
        "host's network. See the README's 'Security model'.",
        code="isolation_unavailable",
    )
    assert sandbox_failure(refused) == (
        "The sandbox gives isolation L2, below the L3 asked for. Missing: network: the "
        "host's network. See the README's 'Security model'."
    )
    broken = SandboxError("The zygote exited.")
    assert sandbox_failure(broken) == "the sandbox did not start: The zygote exited."
