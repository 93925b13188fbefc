"""The dashboard's display rules, without a browser: durations, state colours, the steps'
timeline and what of a dataclip is shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fulmen.coordinator.dashboard.views import (
    duration,
    package_pins,
    pretty_json,
    state_class,
    timeline,
    visible_dataclip,
)
from fulmen.lifecycle import StepState
from fulmen.plan import JAVASCRIPT, PYTHON, Job
from fulmen.store import Step

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0004, "0 ms"),
        (0.85, "850 ms"),
        (12.44, "12.4 s"),
        (185, "3 min 5 s"),
        (7800, "2 h 10 min"),
    ],
)
def test_durations_read_at_a_glance(seconds: float, text: str) -> None:
    assert duration(T0, T0 + timedelta(seconds=seconds), T0) == text


def test_a_run_in_flight_is_measured_up_to_now_and_one_not_started_not_at_all() -> None:
    assert duration(T0, None, T0 + timedelta(seconds=2)) == "2.0 s"
    assert duration(None, None, T0) == ""


@pytest.mark.parametrize(
    ("state", "css"),
    [
        ("success", "ok"),
        ("failed", "bad"),
        ("crashed", "bad"),
        ("lost", "bad"),
        ("fail", "bad"),
        ("started", "busy"),
        ("running", "busy"),
        ("available", "idle"),
        ("cancelled", "idle"),
    ],
)
def test_state_colours(state: str, css: str) -> None:
    assert state_class(state) == css


def step(job: str, start_ms: int, end_ms: int | None, state: StepState) -> Step:
    end = T0 + timedelta(milliseconds=end_ms) if end_ms is not None else None
    return Step(
        id=f"s-{job}",
        run_id="r",
        job_id=job,
        input_dataclip_id=None,
        output_dataclip_id=None,
        state=state,
        error_type="ValueError" if state is StepState.FAIL else None,
        error_message="bad" if state is StepState.FAIL else None,
        started_at=T0 + timedelta(milliseconds=start_ms),
        finished_at=end,
    )


def test_the_timeline_places_steps_on_the_run_s_time_axis() -> None:
    steps = [
        step("b", 500, 1000, StepState.FAIL),
        step("a", 0, 500, StepState.SUCCESS),
    ]
    placed = timeline(steps, {"a": "first"}, T0, T0 + timedelta(seconds=1), T0)
    assert [(s.job_name, s.left, s.width, s.css) for s in placed] == [
        ("first", 0.0, 50.0, "ok"),
        ("b", 50.0, 50.0, "bad"),
    ]
    assert placed[1].reason == "ValueError: bad"
    assert placed[0].duration == "500 ms"


def test_a_step_of_a_millisecond_is_still_a_visible_mark() -> None:
    (placed,) = timeline(
        [step("a", 0, 1, StepState.SUCCESS)], {}, T0, T0 + timedelta(seconds=10), T0
    )
    assert placed.width == 0.5


def test_a_running_step_reaches_now() -> None:
    now = T0 + timedelta(seconds=2)
    (placed,) = timeline([step("a", 1000, None, StepState.RUNNING)], {}, T0, None, now)
    assert (placed.left, placed.width, placed.css) == (50.0, 50.0, "busy")


def test_credentials_are_never_part_of_a_shown_dataclip() -> None:
    body = {"data": {"configuration": "user data stays"}, "configuration": {"password": "x"}}
    assert visible_dataclip(body) == {"data": {"configuration": "user data stays"}}
    assert visible_dataclip([1, 2]) == [1, 2]


def test_a_large_dataclip_is_cut_for_the_page() -> None:
    text, cut = pretty_json({"items": list(range(100))}, limit=50)
    assert cut and len(text) == 50
    whole, cut = pretty_json({"a": 1})
    assert whole == '{\n  "a": 1\n}' and not cut


@pytest.mark.parametrize(
    ("adaptor", "language", "requirements", "shown"),
    [
        ("pandas@2.2.3", PYTHON, ("httpx==0.28.1",), ["pandas 2.2.3", "httpx 0.28.1"]),
        ("common", PYTHON, ("pandas[sql]==2.2.3",), ["pandas 2.2.3"]),
        ("common", PYTHON, (), []),
        ("mycompany.adaptor", PYTHON, (), []),
        ("@openfn/language-common@3.3.4", JAVASCRIPT, (), []),
        ("not an adaptor", PYTHON, (), []),  # a job no longer readable: nothing to show
    ],
)
def test_a_python_job_shows_the_versions_its_packages_are_pinned_at(
    adaptor: str, language: str, requirements: tuple[str, ...], shown: list[str]
) -> None:
    job = Job(id="j", body="", adaptor=adaptor, language=language, requirements=requirements)
    assert package_pins(job) == shown
