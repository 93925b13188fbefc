"""A create request's fields, checked (spec runner.md §3.3); topics and subscriptions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fulmen.errors import RunnerError
from fulmen.runner import topics
from fulmen.runner.spec import Upload, parse

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TASKS = "async def tasks(rnr):\n    pass\n"


def test_defaults_and_escrin_aliases() -> None:
    spec = parse({"code": TASKS, "type": "sw"}, now=NOW)
    assert spec.script == TASKS and spec.type == "classic"
    plain = parse({"script": TASKS}, now=NOW)
    assert (plain.type, plain.config, plain.schedule, plain.timezone) == ("module", {}, None, "UTC")
    assert plain.run_on_create is True and plain.error_policy == "continue"


def test_form_values_are_text_and_files() -> None:
    spec = parse(
        {"script": Upload(TASKS, "w.py"), "config": Upload('{"a": [1]}', "c.json"),
         "schedule": '"*/5 * * * *"', "events": "a, b.*, a", "run_on_create": "false",
         "args": '{"public": true}'},
        now=NOW,
    )  # fmt: skip
    assert spec.script == TASKS and spec.config == {"a": [1]}
    assert spec.schedule == "*/5 * * * *" and spec.events == ("a", "b.*")
    assert spec.run_on_create is False and spec.args == {"public": True}
    assert parse({"script": TASKS, "config": '{"k": 1}'}, now=NOW).config == {"k": 1}


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        ({"script": TASKS, "code": TASKS}, "bad_request", "not both"),
        ({"script": 5}, "bad_request", "script: is required"),
        ({"script": "if:\n"}, "bad_request", r"does not compile: invalid syntax \(line 1\)"),
        ({"script": "x = '\0'"}, "bad_request", "does not compile"),
        ({"script": TASKS, "config": '{"k":'}, "bad_request", "config: is not valid JSON"),
        ({"script": TASKS, "config": "[1]"}, "bad_request", "config: must be an object"),
        ({"script": TASKS, "config": "x" * 70_000}, "too_large", "config: is over"),
        ({"script": TASKS, "args": Upload("{}", "a")}, "bad_request", "cannot be a file"),
        ({"script": TASKS, "schedule": "@reboot"}, "invalid_cron", "invalid schedule"),
        ({"script": TASKS, "schedule": "5-1 * * * *"}, "invalid_cron", "invalid schedule"),
        ({"script": TASKS, "schedule": "*/0 * * * *"}, "invalid_cron", "invalid schedule"),
        ({"script": TASKS, "schedule": 5}, "bad_request", "cron expression"),
        ({"script": TASKS, "timezone": "Nowhere/Land"}, "invalid_cron", "time zone"),
        ({"script": TASKS, "events": "UPPER"}, "bad_request", "optionally ending in"),
        ({"script": TASKS, "events": [1]}, "bad_request", "list of topics"),
        ({"script": TASKS, "run_on_create": "maybe"}, "bad_request", "true or false"),
        ({"script": TASKS, "error_policy": "explode"}, "bad_request", "error_policy"),
        ({"script": TASKS, "identity": "bad name"}, "bad_request", "identity: must be"),
    ],
)
def test_bad_fields(fields: dict[str, Any], code: str, message: str) -> None:
    with pytest.raises(RunnerError, match=message) as caught:
        parse(fields, now=NOW)
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("subscription", "topic", "hit"),
    [("orders", "orders", True), ("orders", "orders.new", False), ("orders.*", "orders.new", True),
     ("orders.*", "orders.eu.paid", True), ("orders.*", "orders", False),
     ("orders.*", "ordersx.new", False)],
)  # fmt: skip
def test_subscriptions(subscription: str, topic: str, hit: bool) -> None:
    assert topics.is_subscription(subscription) and topics.is_topic(topic)
    assert topics.matches(subscription, topic) is hit


def test_topic_shapes() -> None:
    assert not topics.is_topic("a.*") and not topics.is_topic("A") and not topics.is_topic("")
    assert topics.subscribers("x.y", [("w1", ["x.*"]), ("w2", ["x"]), ("w3", ["x.y"])]) == [
        "w1", "w3"]  # fmt: skip


def test_every_fields_problem_is_reported_at_once() -> None:
    fields = {"script": TASKS, "name": "no spaces", "events": 7, "run_on_create": "maybe"}
    with pytest.raises(RunnerError) as caught:
        parse(fields, now=NOW)
    assert caught.value.message.split("; ") == [
        "name: must be 1-64 characters of A-Z a-z 0-9 _ . -",
        "events: must be a list of topics, not a number",
        "run_on_create: must be true or false, not text",
    ]
