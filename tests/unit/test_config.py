"""Settings from a given environment: defaults, historical names, typed values and errors that
name the variable."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulmen.config import (
    ClientSettings,
    CoordinatorSettings,
    RunnerClientSettings,
    RunnerSettings,
    SandboxSettings,
    Secret,
    WorkerSettings,
    read_environ,
    require,
)
from fulmen.errors import ConfigError


def test_worker_defaults_are_ws_workers() -> None:
    settings = WorkerSettings.from_env({})
    assert settings == WorkerSettings()
    assert settings.lightning_url == "ws://localhost:4000/worker"
    assert (settings.capacity, settings.backoff_min, settings.backoff_max) == (5, 1.0, 10.0)
    assert (settings.message_timeout, settings.claim_timeout) == (30.0, 3600.0)
    assert settings.state_props_to_remove == ("configuration", "response")
    assert settings.secret is None and settings.public_key is None


def test_worker_settings_from_the_environment() -> None:
    settings = WorkerSettings.from_env(
        {
            "WORKER_LIGHTNING_SERVICE_URL": "ws://127.0.0.1:4000/worker",
            "WORKER_SECRET": "s" * 44,
            "LIGHTNING_PUBLIC_KEY": "cHVibGlj",
            "WORKER_WORKLOOPS": "fast_lane:1 manual>*:4",
            "WORKER_BACKOFF": "0.5/30",
            "WORKER_MAX_RUN_DURATION_SECONDS": "60",
            "WORKER_BATCH_LOGS": "true",
            "WORKER_STATE_PROPS_TO_REMOVE": "configuration, response,secret",
            "DEPLOYED_POD_NAME": "pod-7",
            "WORKER_MESSAGE_TIMEOUT_SECONDS": "20",
        }
    )
    assert settings.secret == Secret("WORKER_SECRET", "s" * 44)
    assert settings.public_key == Secret("LIGHTNING_PUBLIC_KEY", "cHVibGlj")
    assert settings.workloops == "fast_lane:1 manual>*:4"
    assert (settings.backoff_min, settings.backoff_max) == (0.5, 30.0)
    assert settings.max_run_duration == 60.0 and settings.batch_logs
    assert settings.state_props_to_remove == ("configuration", "response", "secret")
    assert settings.worker_name == "pod-7"
    assert settings.message_timeout == 20.0


def test_the_deprecated_socket_timeout_wins_as_in_ws_worker() -> None:
    env = {"WORKER_MESSAGE_TIMEOUT_SECONDS": "20", "WORKER_SOCKET_TIMEOUT_SECONDS": "45"}
    assert WorkerSettings.from_env(env).message_timeout == 45.0


def test_worker_name_prefers_worker_name() -> None:
    env = {"WORKER_NAME": "a", "DEPLOYED_POD_NAME": "b"}
    assert WorkerSettings.from_env(env).worker_name == "a"


def test_current_key_names_win_over_historical_ones() -> None:
    old = CoordinatorSettings.from_env({"ATTEMPTS_PRIVATE_KEY": "old"})
    assert old.private_key == Secret("ATTEMPTS_PRIVATE_KEY", "old")
    renamed = CoordinatorSettings.from_env({"WORKER_ATTEMPTS_PRIVATE_KEY": "mid"})
    assert renamed.private_key == Secret("WORKER_ATTEMPTS_PRIVATE_KEY", "mid")
    both = CoordinatorSettings.from_env(
        {"ATTEMPTS_PRIVATE_KEY": "old", "WORKER_RUNS_PRIVATE_KEY": "new"}
    )
    assert both.private_key == Secret("WORKER_RUNS_PRIVATE_KEY", "new")
    worker = WorkerSettings.from_env(
        {"LIGHTNING_PUBLIC_KEY": "o", "WORKER_LIGHTNING_PUBLIC_KEY": "n"}
    )
    assert worker.public_key == Secret("WORKER_LIGHTNING_PUBLIC_KEY", "n")


def test_coordinator_settings() -> None:
    settings = CoordinatorSettings.from_env(
        {"WORKER_SECRET": "x" * 32, "RUN_GRACE_PERIOD_SECONDS": "20", "FULMEN_DATABASE_URL": "pg"}
    )
    assert settings.run_grace_period == 20.0
    assert settings.max_run_duration == 300.0
    assert settings.listen_address == "127.0.0.1"
    assert settings.database_url == "pg"


def test_dashboard_sessions_last_twelve_hours_idle_and_seven_days_in_all() -> None:
    defaults = CoordinatorSettings.from_env({})
    assert (defaults.dashboard_session_idle, defaults.dashboard_session_max) == (43_200, 604_800)
    chosen = CoordinatorSettings.from_env(
        {
            "FULMEN_DASHBOARD_SESSION_IDLE_SECONDS": "900",
            "FULMEN_DASHBOARD_SESSION_MAX_SECONDS": "86400",
        }
    )
    assert (chosen.dashboard_session_idle, chosen.dashboard_session_max) == (900, 86_400)
    with pytest.raises(ConfigError) as info:
        CoordinatorSettings.from_env({"FULMEN_DASHBOARD_SESSION_IDLE_SECONDS": "0"})
    assert "FULMEN_DASHBOARD_SESSION_IDLE_SECONDS" in info.value.message


def test_sign_ins_are_limited_per_account_and_address_within_a_window() -> None:
    defaults = CoordinatorSettings.from_env({})
    assert (
        defaults.sign_in_account_limit,
        defaults.sign_in_address_limit,
        defaults.sign_in_window,
        defaults.invitation_ttl,
    ) == (5, 20, 900, 604_800)
    chosen = CoordinatorSettings.from_env(
        {
            "FULMEN_SIGN_IN_ACCOUNT_LIMIT": "3",
            "FULMEN_SIGN_IN_ADDRESS_LIMIT": "50",
            "FULMEN_SIGN_IN_WINDOW_SECONDS": "3600",
            "FULMEN_INVITATION_TTL_SECONDS": "86400",
        }
    )
    assert (chosen.sign_in_account_limit, chosen.sign_in_address_limit) == (3, 50)
    assert (chosen.sign_in_window, chosen.invitation_ttl) == (3600, 86_400)
    for name in ("FULMEN_SIGN_IN_ACCOUNT_LIMIT", "FULMEN_SIGN_IN_WINDOW_SECONDS"):
        with pytest.raises(ConfigError) as info:
            CoordinatorSettings.from_env({name: "0"})
        assert name in info.value.message


def test_the_python_index_is_uvs_own_unless_an_http_url_is_given() -> None:
    assert CoordinatorSettings.from_env({}).python_index is None
    mirror = "https://pypi.example.org/simple"
    assert CoordinatorSettings.from_env({"FULMEN_PYTHON_INDEX": mirror}).python_index == mirror
    with pytest.raises(ConfigError) as info:
        CoordinatorSettings.from_env({"FULMEN_PYTHON_INDEX": "file:///srv/wheels"})
    assert info.value.code == "bad_url"
    assert info.value.message == "FULMEN_PYTHON_INDEX must be an http:// or https:// URL"


def test_alert_e_mails_use_the_operators_smtp_server() -> None:
    """Issue 18: no server by default (e-mail deliveries fail, saying so); STARTTLS on 587
    unless implicit TLS (465) is asked for; a login is a username and password together."""
    defaults = CoordinatorSettings.from_env({})
    assert (defaults.smtp_host, defaults.smtp_port, defaults.smtp_starttls) == (None, 587, True)
    assert (defaults.alert_poll_interval, defaults.alert_max_attempts) == (5.0, 10)
    chosen = CoordinatorSettings.from_env(
        {
            "FULMEN_SMTP_HOST": "smtp.example.org",
            "FULMEN_SMTP_TLS": "true",
            "FULMEN_SMTP_USERNAME": "fulmen",
            "FULMEN_SMTP_PASSWORD": "hunter22",
            "FULMEN_SMTP_FROM": "Ops <ops@example.org>",
            "FULMEN_ALERT_BACKOFF": "5/60",
            "FULMEN_PUBLIC_URL": "https://fulmen.example.org",
        }
    )
    assert (chosen.smtp_port, chosen.smtp_tls, chosen.smtp_starttls) == (465, True, False)
    assert chosen.smtp_password is not None and "hunter22" not in repr(chosen)
    assert (chosen.alert_backoff_min, chosen.alert_backoff_max) == (5.0, 60.0)
    for bad in [
        {"FULMEN_SMTP_TLS": "true", "FULMEN_SMTP_STARTTLS": "true"},
        {"FULMEN_SMTP_USERNAME": "fulmen"},
        {"FULMEN_SMTP_FROM": "nobody"},
        {"FULMEN_SMTP_PORT": "0"},
        {"FULMEN_ALERT_MAX_ATTEMPTS": "0"},
    ]:
        with pytest.raises(ConfigError):
            CoordinatorSettings.from_env(bad)


def test_the_runner_is_none_unless_an_http_url_is_given() -> None:
    assert CoordinatorSettings.from_env({}).runner_url is None
    chosen = CoordinatorSettings.from_env(
        {"FULMEN_RUNNER_URL": "http://127.0.0.1:8080", "FULMEN_RUNNER_TOKEN_FILE": "/x/token"}
    )
    assert (chosen.runner_url, chosen.runner_token_file) == ("http://127.0.0.1:8080", "/x/token")
    with pytest.raises(ConfigError) as info:
        CoordinatorSettings.from_env({"FULMEN_RUNNER_URL": "127.0.0.1:8080"})
    assert info.value.message == "FULMEN_RUNNER_URL must be an http:// or https:// URL"


def test_the_audit_trail_keeps_90_days_at_least_and_the_instance_a_year() -> None:
    default = CoordinatorSettings.from_env({})
    assert (default.audit_min_retention_days, default.audit_retention_days) == (90, 365)
    chosen = CoordinatorSettings.from_env(
        {"FULMEN_AUDIT_MIN_RETENTION_DAYS": "30", "FULMEN_AUDIT_RETENTION_DAYS": "730"}
    )
    assert (chosen.audit_min_retention_days, chosen.audit_retention_days) == (30, 730)
    for variable in ("FULMEN_AUDIT_MIN_RETENTION_DAYS", "FULMEN_AUDIT_RETENTION_DAYS"):
        with pytest.raises(ConfigError) as info:
            CoordinatorSettings.from_env({variable: "0"})
        assert variable in info.value.message


def test_a_proxy_on_the_same_host_is_trusted_unless_told_otherwise() -> None:
    assert CoordinatorSettings.from_env({}).trusted_proxies == ("127.0.0.1",)
    assert CoordinatorSettings.from_env({"FULMEN_TRUSTED_PROXIES": "None"}).trusted_proxies == ()
    chosen = CoordinatorSettings.from_env({"FULMEN_TRUSTED_PROXIES": "10.0.0.0/8, ::1"})
    assert chosen.trusted_proxies == ("10.0.0.0/8", "::1")
    with pytest.raises(ConfigError) as info:
        CoordinatorSettings.from_env({"FULMEN_TRUSTED_PROXIES": "10.0.0.1,*"})
    assert info.value.message == (
        "FULMEN_TRUSTED_PROXIES must be IP addresses or networks (10.0.0.0/8), by commas, not '*'"
    )


def test_secrets_never_show_their_value() -> None:
    secret = Secret("WORKER_SECRET", "hunter2-hunter2-hunter2-hunter2!")
    settings = WorkerSettings(secret=secret)
    assert "hunter2" not in repr(secret) + str(secret) + repr(settings)
    assert "WORKER_SECRET" in repr(secret)


def test_require_names_the_missing_variable() -> None:
    with pytest.raises(ConfigError) as info:
        require(None, ("WORKER_RUNS_PRIVATE_KEY", "ATTEMPTS_PRIVATE_KEY"))
    assert info.value.code == "missing"
    assert "WORKER_RUNS_PRIVATE_KEY" in info.value.message
    secret = Secret("WORKER_SECRET", "v")
    assert require(secret, ("WORKER_SECRET",)) is secret


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"WORKER_CAPACITY": "five"}, "WORKER_CAPACITY"),
        ({"WORKER_CAPACITY": "0"}, "WORKER_CAPACITY"),
        ({"WORKER_BACKOFF": "10"}, "WORKER_BACKOFF"),
        ({"WORKER_BACKOFF": "10/1"}, "WORKER_BACKOFF"),
        ({"WORKER_BACKOFF": "a/b"}, "WORKER_BACKOFF"),
        ({"WORKER_BATCH_LOGS": "maybe"}, "WORKER_BATCH_LOGS"),
        ({"WORKER_MAX_RUN_DURATION_SECONDS": "-1"}, "WORKER_MAX_RUN_DURATION_SECONDS"),
        ({"WORKER_MAX_PAYLOAD_MB": "inf"}, "WORKER_MAX_PAYLOAD_MB"),
        ({"WORKER_CLAIM_TIMEOUT_SECONDS": "soon"}, "WORKER_CLAIM_TIMEOUT_SECONDS"),
        ({"WORKER_CAPACITY": "2", "WORKER_WORKLOOPS": "*:2"}, "WORKER_WORKLOOPS"),
    ],
)
def test_bad_values_name_their_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        WorkerSettings.from_env(env)
    assert variable in info.value.message


def test_sandbox_settings_default_to_the_best_level_and_the_outside_network() -> None:
    assert SandboxSettings.from_env({}) == SandboxSettings("best", "outside", ())
    assert WorkerSettings().sandbox == RunnerSettings().sandbox == SandboxSettings()


def test_sandbox_settings_from_the_environment_reach_the_worker_and_the_runner() -> None:
    env = {
        "FULMEN_ISOLATION": "L3",
        "FULMEN_NETWORK": "none",
        "FULMEN_ALLOW_NET": "127.0.0.1:8080, localhost:9000,",
    }
    expected = SandboxSettings("L3", "none", ("127.0.0.1:8080", "localhost:9000"))
    assert SandboxSettings.from_env(env) == expected
    assert WorkerSettings.from_env(env).sandbox == expected
    assert RunnerSettings.from_env(env).sandbox == expected


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"FULMEN_ISOLATION": "L4"}, "FULMEN_ISOLATION must be L3, L2, L1, L0 or best, not 'L4'"),
        ({"FULMEN_ISOLATION": "l3"}, "FULMEN_ISOLATION must be L3, L2, L1, L0 or best, not 'l3'"),
        ({"FULMEN_NETWORK": "hub"}, "FULMEN_NETWORK must be outside, none or host, not 'hub'"),
    ],
)
def test_bad_sandbox_values_name_their_variable(env: dict[str, str], line: str) -> None:
    for settings in (SandboxSettings, WorkerSettings, RunnerSettings):
        with pytest.raises(ConfigError) as info:
            settings.from_env(env)
        assert (info.value.code, info.value.message) == ("bad_value", line)


def test_empty_values_count_as_unset() -> None:
    env = {"WORKER_CAPACITY": "", "WORKER_SECRET": "", "WORKER_NAME": " "}
    assert WorkerSettings.from_env(env) == WorkerSettings()


def test_reading_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_PORT", "3333")
    assert read_environ()["WORKER_PORT"] == "3333"
    assert WorkerSettings.from_env().port == 3333


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "WORKER_CAPACITY",
                "WORKER_BACKOFF",
                "WORKER_BATCH_LOGS",
                "WORKER_PORT",
                "WORKER_MAX_PAYLOAD_MB",
                "WORKER_WORKLOOPS",
                "WORKER_STATE_PROPS_TO_REMOVE",
                "RUN_GRACE_PERIOD_SECONDS",
                "WORKER_SECRET",
                "ATTEMPTS_PRIVATE_KEY",
                "FULMEN_ISOLATION",
                "FULMEN_NETWORK",
                "FULMEN_ALLOW_NET",
            ]
        ),
        st.text(max_size=12),
    )
)
def test_any_environment_gives_settings_or_a_config_error(env: dict[str, str]) -> None:
    for settings in (WorkerSettings, CoordinatorSettings, SandboxSettings):
        try:
            settings.from_env(env)
        except ConfigError as error:
            assert error.code in {"bad_value", "conflict"}


def test_worker_languages_names_what_a_worker_runs_and_refuses_others() -> None:
    assert WorkerSettings.from_env({}).languages is None  # whatever the host can run
    assert WorkerSettings.from_env({"WORKER_LANGUAGES": "python"}).languages == ("python",)
    both = WorkerSettings.from_env({"WORKER_LANGUAGES": "javascript, python,python"})
    assert both.languages == ("javascript", "python")
    with pytest.raises(
        ConfigError, match="WORKER_LANGUAGES must be python or javascript, not 'ruby'"
    ):
        WorkerSettings.from_env({"WORKER_LANGUAGES": "python,ruby"})


@pytest.mark.parametrize(
    ("environ", "folder"),
    [({}, ".fulmen"), ({"FULMEN_DATA_DIR": "/srv/fulmen"}, "/srv/fulmen")],
)
def test_every_command_finds_one_data_directory(environ: dict[str, str], folder: str) -> None:
    """Issue 21: the coordinator, the clients and the runner had three (.fulmen, ./fulmen-data,
    ./runner-data)."""
    assert CoordinatorSettings.from_env(environ).data_dir == folder
    assert ClientSettings.from_env(environ).token_file == os.path.join(folder, "api-token")
    assert RunnerSettings.from_env(environ).state_dir == os.path.join(folder, "runner")
    explicit = {**environ, "FULMEN_RUNNER_STATE_DIR": "/var/runner"}
    assert RunnerSettings.from_env(explicit).state_dir == "/var/runner"


def test_the_runner_client_finds_the_token_fulmen_up_or_a_standalone_runner_wrote() -> None:
    settings = RunnerClientSettings.from_env({})
    assert (settings.url, settings.token) == ("http://127.0.0.1:8080", None)
    assert settings.token_files == (".fulmen/runner-api-token", ".fulmen/runner/api-token")
    moved = RunnerClientSettings.from_env(
        {"FULMEN_DATA_DIR": "/srv/f", "FULMEN_RUNNER_STATE_DIR": "/var/runner"}
    )
    assert moved.token_files == ("/srv/f/runner-api-token", "/var/runner/api-token")
    runner_own = RunnerClientSettings.from_env({"FULMEN_RUNNER_API_TOKEN_FILE": "/etc/r/token"})
    assert runner_own.token_files == (".fulmen/runner-api-token", "/etc/r/token")
    explicit = RunnerClientSettings.from_env(
        {"FULMEN_RUNNER_TOKEN_FILE": "/run/token", "FULMEN_RUNNER_TOKEN": "t0k",
         "FULMEN_RUNNER_URL": "https://runner.example:8443"}
    )  # fmt: skip
    assert explicit.token_files == ("/run/token",)
    assert explicit.token == Secret("FULMEN_RUNNER_TOKEN", "t0k")
    assert explicit.url == "https://runner.example:8443"
    with pytest.raises(ConfigError, match="FULMEN_RUNNER_URL must be an http"):
        RunnerClientSettings.from_env({"FULMEN_RUNNER_URL": "localhost:8080"})
