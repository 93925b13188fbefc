"""Receivers for the alert tests (issue 18), both on loopback in the test's own event loop, so
that a test awaits what arrives instead of polling or sleeping:

* :func:`smtp_inbox`: a real SMTP server (aiosmtpd's protocol) that puts each message it
  accepts, parsed, on a queue;
* :func:`fail_run`: a run of a seeded workflow ended ``failed``, what an alert announces;
* :func:`webhook_receiver`: a small HTTP/1.1 server that puts each request (headers, body) on
  a queue and answers each with the next status of a script (then 200).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP, Envelope, Session

from fulmen.reasons import ExitReason, Reason
from fulmen.store import DataclipType, EnqueueRequest, NewDataclip, RunCompletion, SQLStore
from fulmen_testing.coordinator import Seeded

__all__ = ["Inbox", "Receiver", "Request", "fail_run", "smtp_inbox", "webhook_receiver"]


@dataclass
class Inbox:
    port: int
    #: Each accepted message, with the envelope's recipients as ``X-Envelope-To``.
    messages: asyncio.Queue[EmailMessage] = field(default_factory=asyncio.Queue)
    #: How many to refuse first (``451``: a temporary failure), to test retries.
    refuse: int = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse > 0:
            self.refuse -= 1
            return "451 4.3.0 try again later"
        content = envelope.original_content or b""
        parsed = message_from_bytes(content, policy=policy.default)
        parsed["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        await self.messages.put(parsed)
        return "250 OK"


@asynccontextmanager
async def smtp_inbox() -> AsyncIterator[Inbox]:
    inbox = Inbox(0)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(inbox, hostname="inbox.test", loop=loop), "127.0.0.1", 0
    )
    inbox.port = server.sockets[0].getsockname()[1]
    try:
        yield inbox
    finally:
        server.close()
        await server.wait_closed()


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    #: Header names in lower case.
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    requests: asyncio.Queue[Request] = field(default_factory=asyncio.Queue)
    #: The statuses of the next answers, in order; 200 once it is empty.
    script: list[int] = field(default_factory=list)


@asynccontextmanager
async def webhook_receiver(statuses: Sequence[int] = ()) -> AsyncIterator[Receiver]:
    receiver = Receiver("", script=list(statuses))

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status = receiver.script.pop(0) if receiver.script else 200
            await receiver.requests.put(Request(method, path, headers, body))
            writer.write(
                f"HTTP/1.1 {status} Whatever\r\ncontent-length: 2\r\nconnection: close\r\n\r\n"
                "ok".encode()
            )
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    receiver.url = f"http://127.0.0.1:{port}/hooks/fulmen"
    try:
        yield receiver
    finally:
        server.close()
        await server.wait_closed()


async def fail_run(store: SQLStore, seeded: Seeded) -> str:
    """A run of the seeded workflow, ended ``failed`` through the store, as a worker's
    ``run:complete`` would."""
    run_id = (
        await store.enqueue(
            EnqueueRequest(
                seeded.workflow_id,
                input=NewDataclip(DataclipType.HTTP_REQUEST, {}),
                trigger_id=seeded.webhook_id,
            )
        )
    ).run_id
    [claimed] = await store.claim(1, ["*"], "w")
    assert claimed.id == run_id
    await store.start_run(run_id)
    reason = ExitReason(Reason.FAIL, "ZeroDivisionError", "division by zero")
    await store.complete_run(run_id, RunCompletion(reason))
    return run_id
