"""Phoenix Channels V2, sans-I/O: frames, a client session and a server session.

Nothing here does I/O or knows Lightning's event names: the worker's and the coordinator's
asyncio pumps feed data in and write ``data_to_send()`` out (STYLE.md P1). The wire facts are
in ``spec/worker-protocol.md`` §1.
"""

from fulmen.phoenix.client import ClientSession
from fulmen.phoenix.frames import (
    BinaryBroadcast,
    BinaryPush,
    BinaryReply,
    Message,
    ReplyStatus,
    Sender,
    decode_binary,
    decode_text,
    encode_binary,
    encode_text,
)
from fulmen.phoenix.server import ServerSession

__all__ = [
    "BinaryBroadcast",
    "BinaryPush",
    "BinaryReply",
    "ClientSession",
    "Message",
    "ReplyStatus",
    "Sender",
    "ServerSession",
    "decode_binary",
    "decode_text",
    "encode_binary",
    "encode_text",
]
