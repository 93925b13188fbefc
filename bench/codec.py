"""Phoenix frame codec throughput, then what each Lightning message costs to decode and encode.

Frames: the recorded ``step:complete`` (a typical lifecycle frame, ~450 bytes); a
``step:complete`` whose output dataclip is 1 MB (text frame, the worker → server direction);
and a 1 MB ``fetch:dataclip`` reply as Lightning sends it (binary frame). The stdlib ``json``
line is there to show what orjson buys on the typical frame.

Messages: each recorded worker payload (and a 20-line ``run:batch_logs`` built from the
recorded log line), in µs per message: the frame's JSON (``decode_text``), the contract's
decode of its payload (``from_wire``, as the coordinator's channels call it), both together,
and the way back (``to_wire`` and ``encode_text``, as the worker sends it). Each figure is
CPU time, the best of several short windows, which a shared machine disturbs least.

Prints figures only.

Run: ``.venv/bin/python bench/codec.py [seconds-per-case]``
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fulmen.contract import (
    JSON,
    ClaimReply,
    ClaimRequest,
    QueueJoin,
    RunJoin,
    decode_run_request,
)
from fulmen.phoenix.frames import (
    BinaryReply,
    Message,
    Sender,
    decode_binary,
    decode_text,
    encode_binary,
    encode_text,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "phoenix"
STEP_COMPLETE = (FIXTURES / "w2l-step-complete.txt").read_text()

#: The recorded frames each message kind is measured on, and how a peer decodes its payload.
MESSAGES: list[tuple[str, str, Callable[[str, JSON], object]]] = [
    ("phx_join worker:queue", "w2l-queue-join", lambda _, p: QueueJoin.from_wire(p)),
    ("claim", "w2l-claim", lambda _, p: ClaimRequest.from_wire(p)),
    ("phx_join run:<id>", "w2l-run-join", lambda _, p: RunJoin.from_wire(p)),
    ("fetch:plan", "w2l-fetch-plan", decode_run_request),
    ("fetch:dataclip", "w2l-fetch-dataclip", decode_run_request),
    ("run:start", "w2l-run-start", decode_run_request),
    ("step:start", "w2l-step-start", decode_run_request),
    ("run:log", "w2l-run-log-step", decode_run_request),
    ("step:complete", "w2l-step-complete", decode_run_request),
    ("run:complete", "w2l-run-complete", decode_run_request),
]
BATCH_LINES = 20


def rate(action: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``action``, measured over about ``seconds``."""
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(16):
            action()
        count += 16
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def per_call(action: Callable[[], object], seconds: float, windows: int = 5) -> float:
    """µs of CPU per call of ``action``: the best of ``windows`` windows of about
    ``seconds / windows`` each. Process time, not the wall clock: other processes on a shared
    machine disturb it much less."""
    best = float("inf")
    for _ in range(windows):
        count, start = 0, time.process_time()
        deadline = start + seconds / windows
        while (now := time.process_time()) < deadline or not count:
            for _ in range(16):
                action()
            count += 16
        best = min(best, (now - start) / count * 1e6)
    return best


def batch_frame() -> str:
    """A ``run:batch_logs`` of ``BATCH_LINES`` copies of the recorded log line."""
    log = decode_text((FIXTURES / "w2l-run-log-step.txt").read_text())
    assert isinstance(log.payload, dict)
    line = {key: value for key, value in log.payload.items() if key != "run_id"}
    payload: JSON = {"run_id": log.payload["run_id"], "logs": [line] * BATCH_LINES}
    return encode_text(Message(log.join_ref, log.ref, log.topic, "run:batch_logs", payload))


def message_cases() -> list[tuple[str, str, Callable[[str, JSON], object]]]:
    """(name, frame text, payload decoder) for each message kind."""
    cases = [(name, (FIXTURES / f"{file}.txt").read_text(), dec) for name, file, dec in MESSAGES]
    cases.insert(-2, (f"run:batch_logs ({BATCH_LINES} lines)", batch_frame(), decode_run_request))
    reply = decode_text((FIXTURES / "l2w-claim-reply.txt").read_text())
    assert isinstance(reply.payload, dict)
    claim_reply = Message(None, reply.ref, reply.topic, "claim", reply.payload["response"])
    cases.append(("claim reply", encode_text(claim_reply), lambda _, p: ClaimReply.from_wire(p)))
    return cases


def messages(seconds: float) -> None:
    """The table of µs per message, decoding and encoding, through the contract."""
    print(f"\n{'message (µs per message)':<32} {'bytes':>6}" + "".join(f"{c:>9}" for c in COLUMNS))
    for name, text, decode in message_cases():
        frame = decode_text(text)
        head = (frame.join_ref, frame.ref, frame.topic, frame.event)
        value: Any = decode(frame.event, frame.payload)
        assert encode_text(Message(*head, value.to_wire())) == text, name
        actions: list[Callable[[], object]] = [
            functools.partial(decode_text, text),
            functools.partial(decode, frame.event, frame.payload),
            functools.partial(_decode, text, decode),
            functools.partial(_encode, head, value),
        ]
        figures = "".join(f"{per_call(action, seconds):>9.1f}" for action in actions)
        print(f"{name:<32} {len(text.encode()):>6}{figures}")


COLUMNS = ("frame", "contract", "decode", "encode")
"""frame: ``decode_text``; contract: ``from_wire`` of the payload; decode: both; encode:
``to_wire`` and ``encode_text``."""


def _decode(text: str, decode: Callable[[str, JSON], object]) -> object:
    message = decode_text(text)
    return decode(message.event, message.payload)


def _encode(head: tuple[str | None, str | None, str, str], value: Any) -> str:
    return encode_text(Message(*head, value.to_wire()))


def one_megabyte_state() -> str:
    items = [{"id": i, "name": f"patient-{i}", "visits": [i, i + 1]} for i in range(19000)]
    text = json.dumps({"data": {"items": items}}, separators=(",", ":"))
    return text[: 1 << 20] if len(text) > 1 << 20 else text


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
    typical = decode_text(STEP_COMPLETE)
    assert isinstance(typical.payload, dict)
    big_state = one_megabyte_state()
    big = Message(
        typical.join_ref,
        typical.ref,
        typical.topic,
        typical.event,
        {**typical.payload, "output_dataclip": big_state},
    )
    big_text = encode_text(big)
    reply = BinaryReply("13", "15", "run:smoke-run-1", "ok", big_state.encode())
    reply_bytes = encode_binary(reply, sender=Sender.SERVER)
    stdlib_frame = json.loads(STEP_COMPLETE)

    cases: list[tuple[str, int, Callable[[], object], Callable[[], object]]] = [
        ("step:complete (typical)", len(STEP_COMPLETE.encode()),
         lambda: encode_text(typical), lambda: decode_text(STEP_COMPLETE)),
        ("step:complete, 1 MB dataclip (text)", len(big_text.encode()),
         lambda: encode_text(big), lambda: decode_text(big_text)),
        ("fetch:dataclip reply, 1 MB (binary)", len(reply_bytes),
         lambda: encode_binary(reply, sender=Sender.SERVER),
         lambda: decode_binary(reply_bytes, sender=Sender.SERVER)),
        ("step:complete (typical), stdlib json", len(STEP_COMPLETE.encode()),
         lambda: json.dumps(stdlib_frame, separators=(",", ":"), ensure_ascii=False),
         lambda: json.loads(STEP_COMPLETE)),
    ]  # fmt: skip
    print(f"{'case':<40} {'bytes':>9} {'encode/s':>12} {'decode/s':>12} {'decode MB/s':>12}")
    for name, size, encode, decode in cases:
        encoded, decoded = rate(encode, seconds), rate(decode, seconds)
        throughput = decoded * size / 1e6
        print(f"{name:<40} {size:>9} {encoded:>12,.0f} {decoded:>12,.0f} {throughput:>12,.1f}")
    messages(seconds)


if __name__ == "__main__":
    main()
