"""A smart worker's channel answers every request (issue 13): ``ready`` and ``log`` are
notices, and a worker that sends them as requests (with an id) used to wait for ever. A real
worker's script sends them; each gets an error reply at once and the worker carries on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fulmen_testing.runner.harness import served
from fulmen_testing.runner.scripts import NOTICES_AS_REQUESTS

pytestmark = pytest.mark.timeout(60)


def test_notices_sent_as_requests_are_answered_with_an_error(tmp_path: Path) -> None:
    async def main() -> None:
        async with served(tmp_path / "state") as s:
            made = await s.create(NOTICES_AS_REQUESTS, name="odd", config={"k": "v"})
            reply = await s.http.get("/workers/odd/fetch")
            assert reply.status_code == 200, reply.text
            out = reply.json()
            for op in ("ready", "log"):
                assert out[op] == {
                    "raised": "BindingError",
                    "code": "bad_request",
                    "message": f"'{op}' is a notice: send it without an id",
                }, out
            assert out["string_id"] == {
                "id": "x",
                "ok": False,
                "error": {"code": "bad_request", "message": "a request's id must be an integer"},
            }
            assert out["config"] == {"k": "v"}
            # Not acted on: no line "sent as a request", and the worker is still the same one.
            lines = [r["line"] for r in (await s.http.get("/workers/odd/logs")).json()]
            assert "sent as a request" not in lines
            assert sum("refused a request the protocol does not have" in x for x in lines) == 3
            detail = (await s.http.get("/workers/odd")).json()
            assert detail["state"] == "ready" and detail["pid"] == made["pid"]
            assert isinstance(made["pid"], int)  # its process's host pid, as the API shows it

    asyncio.run(main())
