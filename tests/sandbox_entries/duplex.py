"""Duplex entries for tests/integration/test_sandbox_duplex.py: ``(payload, emit, receive)``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Emit = Callable[[dict[str, Any]], None]
Receive = Callable[[], dict[str, Any] | None]


def echo(payload: dict[str, Any], emit: Emit, receive: Receive) -> None:
    """Emit each message back with its index and size, until the input closes."""
    emit({"ready": payload["tag"]})
    index = 0
    while (message := receive()) is not None:
        emit({"i": index, "n": message.get("n"), "size": len(message.get("pad", ""))})
        index += 1
    emit({"closed": index})


def reader_thread(payload: dict[str, Any], emit: Emit, receive: Receive) -> None:
    """Read on a thread while the main thread emits: the shape a long-lived host takes."""
    got: list[int] = []
    done = threading.Event()

    def read() -> None:
        while (message := receive()) is not None:
            got.append(int(message["n"]))
        done.set()

    threading.Thread(target=read, daemon=True).start()
    for i in range(int(payload["emits"])):
        emit({"tick": i})
    done.wait()
    emit({"got": got})


def ignore_input(payload: dict[str, Any], emit: Emit, receive: Receive) -> None:
    """Never read: messages pile up in the socket; the run ends when told to stop."""
    emit({"ready": True})
    threading.Event().wait()
