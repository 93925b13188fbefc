"""No token in any log, at any level (issue 13): a real Fulmen worker connects to a served
coordinator and runs a run, with every logger of both sides at DEBUG, the ``websockets``
protocols and uvicorn's included (more than ``--log debug`` turns on). The worker token
travels in the socket URL's query, each run token in a ``run:<id>`` join; neither appears in
what was logged, while the lines that used to show them are there, redacted."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fulmen.coordinator.redaction import redact
from fulmen.lifecycle import RunState
from fulmen_testing.coordinator import seed, sqlite_store
from fulmen_testing.operator import fulmen_worker, site, until

pytestmark = pytest.mark.anyio

#: A JWT, or the start of one: both tokens are JWTs.
JWT = re.compile(r"eyJ[\w-]{8,}")
LOGGERS = ("", "uvicorn.error", "uvicorn.access", "websockets", "fulmen")
#: uvicorn's logging configuration stops these from propagating to the root logger.
UNPROPAGATED = ("uvicorn", "uvicorn.access")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextmanager
def everything_at_debug(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every logger at DEBUG into ``caplog``; after uvicorn has configured its own."""
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    for name in UNPROPAGATED:
        logging.getLogger(name).addHandler(caplog.handler)
    try:
        yield
    finally:
        for name in UNPROPAGATED:
            logging.getLogger(name).removeHandler(caplog.handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


async def test_a_real_connect_and_run_log_no_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store:
        seeded = await seed(store)
        # after uvicorn has set its loggers up, before the worker connects
        async with site(store) as s:
            with everything_at_debug(caplog):
                async with fulmen_worker(s.served):
                    made = (await s.http.post(f"/i/{seeded.webhook_id}", json={"n": 1})).json()
                    await until(
                        lambda: store.get_run(made["run_id"]),
                        lambda detail: detail.run.state is RunState.SUCCESS,
                        what="the run succeeding",
                    )
    lines = [f"{record.name}: {record.getMessage()}" for record in caplog.records]
    text = "\n".join(lines)
    assert not JWT.search(text), JWT.search(text)
    assert not re.search(r"token=(?!\[redacted\])", text)
    # the lines that carried tokens were logged, without them
    assert re.search(r'uvicorn.error: .*"WebSocket /worker/websocket\?token=\[redacted\]&', text)
    assert "websockets.client: > GET /worker/websocket?[redacted] HTTP/1.1" in lines
    assert any(re.match(r"websockets.client: > TEXT \[\d+ bytes\]$", line) for line in lines)
    assert any(re.match(r"uvicorn.error: < TEXT \[\d+ bytes\]$", line) for line in lines)


def test_redaction_keeps_what_is_not_a_token() -> None:
    assert redact("/worker/websocket?token=eyJa.eyJb.c&vsn=2.0.0") == (
        "/worker/websocket?token=[redacted]&vsn=2.0.0"
    )
    assert redact('{"token": "abc", "n": 1}') == '{"token": "[redacted]", "n": 1}'
    assert redact("Bearer fmn_0a1b2c_s3cr3t") == "Bearer [redacted]"
    invitation = '"POST /ui/invitations/s-paVXrVxbuUFz_yO8aaZEfhy72sjd HTTP/1.1" 303'
    assert redact(invitation) == '"POST /ui/invitations/[redacted] HTTP/1.1" 303'
    assert redact("/ui/invitations/0123abcd/revoke") == "/ui/invitations/0123abcd/revoke"
    plain = '127.0.0.1:5 - "GET /api/runs?state=failed HTTP/1.1" 200'
    assert redact(plain) == plain
