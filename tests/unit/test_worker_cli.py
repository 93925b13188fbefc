"""``fulmen worker``'s configuration: flags over variables, and start-up refusals that are one
line naming the variable (nothing starts, so no sockets or children here)."""

from __future__ import annotations

import functools

import pytest
from click.testing import CliRunner

from fulmen.cli import cli
from fulmen.cli.worker import settings_from
from fulmen.config import Secret, WorkerSettings
from fulmen.errors import ConfigError
from fulmen.keys import GeneratedKeys, generate


@functools.cache
def keys() -> GeneratedKeys:
    return generate()


def good_env() -> dict[str, str | None]:
    return {
        "WORKER_SECRET": keys().worker_secret,
        "WORKER_LIGHTNING_PUBLIC_KEY": keys().public_key,
    }


def start(args: list[str], env: dict[str, str | None]) -> tuple[int, str]:
    names = ("WORKER_SECRET", "WORKER_LIGHTNING_PUBLIC_KEY", "LIGHTNING_PUBLIC_KEY")
    clean: dict[str, str | None] = {name: None for name in names}
    result = CliRunner().invoke(cli, ["worker", *args], env={**clean, **env})
    return result.exit_code, result.output


NO_KEY = {"WORKER_LIGHTNING_PUBLIC_KEY": None}


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        ([], {"WORKER_SECRET": None}, "fulmen worker: WORKER_SECRET is not set"),
        (
            [],
            {"WORKER_SECRET": "short"},
            "fulmen worker: WORKER_SECRET is shorter than 32 bytes (256 bits); "
            "make one with `fulmen keys generate`",
        ),
        ([], NO_KEY, "fulmen worker: WORKER_LIGHTNING_PUBLIC_KEY is not set"),
        (
            [],
            {**NO_KEY, "LIGHTNING_PUBLIC_KEY": "bm90IGEga2V5"},
            "fulmen worker: LIGHTNING_PUBLIC_KEY is base64, but not of a PEM key",
        ),
        (
            ["--lightning-public-key", "%%%"],
            {},
            "fulmen worker: --lightning-public-key is not base64-encoded PEM",
        ),
        (
            ["--workloops", "manual>*:0"],
            {},
            "fulmen worker: WORKER_WORKLOOPS: 'manual>*:0' should be at least 1 slot",
        ),
        (
            ["--capacity", "2", "--workloops", "*:1"],
            {},
            "fulmen worker: --capacity and --workloops are exclusive; give one",
        ),
        (
            ["-l", "http://localhost:4000/worker"],
            {},
            "fulmen worker: WORKER_LIGHTNING_SERVICE_URL must be a ws:// or wss:// URL like "
            "ws://localhost:4000/worker, not 'http://localhost:4000/worker'",
        ),
        (
            ["-l", "ws://a:4000/worker", "-l", "ws://b:4000/worker,wss//c/worker"],
            {},
            "fulmen worker: WORKER_LIGHTNING_SERVICE_URL must be a ws:// or wss:// URL like "
            "ws://localhost:4000/worker, not 'wss//c/worker'",
        ),
        (
            ["--backoff", "10/1"],
            {},
            "fulmen worker: --backoff must be min/max in seconds with 0 < min <= max, not '10/1'",
        ),
    ],
)
def test_a_bad_setting_stops_start_up_with_one_line(
    args: list[str], env: dict[str, str | None], line: str
) -> None:
    """Every case is otherwise fully configured: only the named value is wrong."""
    code, output = start(args, {**good_env(), **env})
    assert code == 2
    assert output.strip().splitlines() == [line]


def test_flags_win_over_variables() -> None:
    env = WorkerSettings.from_env(
        {"WORKER_WORKLOOPS": "fast_lane:1 manual>*:4", "WORKER_SECRET": "env-secret" * 4}
    )
    settings = settings_from(
        env,
        {"capacity": 3, "secret": "flag-secret" * 4, "backoff": "0.5/2", "port": None},
    )
    assert settings.capacity == 3 and settings.workloops is None
    assert settings.secret == Secret("--secret", "flag-secret" * 4)
    assert (settings.backoff_min, settings.backoff_max) == (0.5, 2.0)
    assert settings.port == 2222


def test_several_coordinator_urls_by_flag_or_variable() -> None:
    """Replicas sharing a database (issue 14): ``-l`` repeated, or commas, as in the
    variable; no flag leaves the variable's URLs alone."""
    env = WorkerSettings.from_env({"WORKER_LIGHTNING_SERVICE_URL": "ws://a:1/worker,ws://b:2/w"})
    assert env.lightning_url == "ws://a:1/worker,ws://b:2/w"
    assert settings_from(env, {"lightning_url": ()}).lightning_url == env.lightning_url
    flags = {"lightning_url": ("ws://c:3/worker", "ws://d:4/worker,ws://e:5/worker")}
    assert settings_from(env, flags).lightning_url == (
        "ws://c:3/worker,ws://d:4/worker,ws://e:5/worker"
    )


def test_health_listens_on_loopback_unless_told_otherwise() -> None:
    assert WorkerSettings().health_host == "127.0.0.1"
    assert WorkerSettings.from_env({}).health_host == "127.0.0.1"
    told = WorkerSettings.from_env({"WORKER_HEALTH_HOST": "0.0.0.0"})
    assert told.health_host == "0.0.0.0"
    assert settings_from(told, {"health_host": "::1"}).health_host == "::1"


def test_both_capacity_and_workloops_flags_conflict() -> None:
    with pytest.raises(ConfigError, match="exclusive"):
        settings_from(WorkerSettings(), {"capacity": 1, "workloops": "*:1"})
