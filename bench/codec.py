"""Phoenix frame codec throughput: frames per second encoded and decoded.

Cases: the recorded ``step:complete`` (a typical lifecycle frame, ~450 bytes); a
``step:complete`` whose output dataclip is 1 MB (text frame, the worker → server direction);
and a 1 MB ``fetch:dataclip`` reply as Lightning sends it (binary frame). The stdlib ``json``
line is there to show what orjson buys on the typical frame. Prints figures only.

Run: ``.venv/bin/python bench/codec.py [seconds-per-case]``
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

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
STEP_COMPLETE = (ROOT / "tests" / "fixtures" / "phoenix" / "w2l-step-complete.txt").read_text()


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


if __name__ == "__main__":
    main()
