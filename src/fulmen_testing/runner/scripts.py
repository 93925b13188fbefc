"""Smart-worker scripts the runner's tests create. Each is Python source, run in a sandbox."""

from __future__ import annotations

ECHO = """
from smartworker import Response

calls = 0

async def fetch(request, rnr):
    global calls
    calls += 1
    return {"method": request.method, "path": request.path, "query": dict(request.query),
            "body": request.text(), "calls": calls, "worker": rnr.worker_id}

async def tasks(rnr):
    print("tasks ran", rnr.trigger["kind"])
    cfg = await rnr.get_config()
    rnr.log.info("config has %d keys", len(cfg))

async def on_event(event, rnr):
    print("event", event["topic"], event["payload"])
"""

CLASSIC = """
def hello(request, rnr):
    return "hello from classic " + request.path

async def tick(rnr):
    print("classic tick")

register("fetch", hello)
add_event_listener("tasks", tick)
"""

CONFIG = """
async def fetch(request, rnr):
    return await rnr.get_config()
"""

SCAN = '''
import ctypes, gc, hashlib, os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.pwrite.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long]
_libc.pwrite.restype = ctypes.c_ssize_t
_CHUNK = 1 << 20
_PAGE = os.sysconf("SC_PAGE_SIZE")

def _regions():
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            name = fields[5] if len(fields) > 5 else ""
            if fields[1][0] == "r" and not name.startswith("[v"):
                yield start, end

def _chunks(copy, start, end, overlap):
    """This process's memory in [start, end) as (address, bytes), each chunk overlapping the
    next by ``overlap`` bytes. A run may not open its own /proc/self/mem (in its user
    namespace the file belongs to the host's root), so write(2) copies the memory into a
    memfd: a page that cannot be read fails with EFAULT there instead of crashing."""
    at = start
    while at < end:
        size = min(_CHUNK + overlap, end - at)
        copied = _libc.pwrite(copy, at, size, 0)
        if copied <= 0:
            at += _PAGE  # not readable after all: skip the page
            continue
        yield at, os.pread(copy, copied, 0)
        at += _CHUNK if copied == size else copied

def scan(prefix: bytes, length: int, digest: str) -> dict:
    """Look for a secret (known only by its first bytes and SHA-256) in this process: every
    readable page, then every bytes/str object the collector knows."""
    found, scanned = [], 0
    copy = os.memfd_create("scan")
    try:
        for start, end in list(_regions()):
            for at, data in _chunks(copy, start, end, length - 1):
                scanned += min(len(data), _CHUNK)
                hit = data.find(prefix)
                while hit != -1:
                    if hashlib.sha256(data[hit:hit + length]).hexdigest() == digest:
                        found.append(hex(at + hit))
                    hit = data.find(prefix, hit + 1)
    finally:
        os.close(copy)
    for obj in gc.get_objects():
        if isinstance(obj, (bytes, bytearray, str)) and len(obj) == length:
            raw = obj.encode() if isinstance(obj, str) else bytes(obj)
            if hashlib.sha256(raw).hexdigest() == digest:
                found.append("object")
    return {"found": found, "scanned": scanned}
'''

KEYS = (
    SCAN
    + """
async def fetch(request, rnr):
    q = request.json()
    out = {}
    if q.get("derive", True):
        try:
            key = await rnr.get_omni_key(q.get("store", "local"))
            out["bits"] = (await key.derive_bits(256, salt=b"salt", info=b"info")).hex()
        except Exception as exc:
            return {"error": type(exc).__name__, "code": getattr(exc, "code", None),
                    "message": str(exc)}
        out["repr"] = repr(key)
        out["attrs"] = sorted(a for a in dir(key) if not a.startswith("__"))
    if "prefix" in q:
        raw = scan(bytes.fromhex(q["prefix"]), 32, q["digest"])
        hexed = scan(q["hex_prefix"].encode(), 64, q["hex_digest"])
        out["found"] = raw["found"] + hexed["found"]
        out["scanned"] = raw["scanned"]
    if "forge" in q:
        results = {}
        for name, op, args in q["forge"]:
            try:
                results[name] = await rnr._call(op, args)
            except Exception as exc:
                results[name] = {"raised": type(exc).__name__, "code": getattr(exc, "code", None)}
        out["forged"] = results
    return out

async def tasks(rnr):
    pass
"""
)

PROBE = (
    SCAN
    + """
import json

async def fetch(request, rnr):
    q = request.json()
    if q.get("write"):
        with open(os.path.join(os.environ["HOME"], "mine.txt"), "w") as f:
            f.write("private to this worker")
        return {"home": os.environ["HOME"], "pid": os.getpid()}

    def attempt(action):
        try:
            action()
        except Exception as exc:
            return type(exc).__name__
        return "ok"

    def read(path):
        with open(path, "rb") as f:
            f.read(16)

    out = {name: attempt(lambda p=path: read(p)) for name, path in q["read"].items()}
    out["list_other_home"] = attempt(lambda: os.listdir(q["other_home"]))
    if out["list_other_home"] == "ok":
        out["other_home_entries"] = sorted(os.listdir(q["other_home"]))
    out["env"] = sorted(os.environ)
    out["fds"] = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out["fds"][fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            out["fds"][fd] = "gone"  # the listing's own descriptor, closed by now
    if "marker_prefix" in q:
        out["marker"] = scan(q["marker_prefix"].encode(), q["marker_length"], q["marker_digest"])
    out["config"] = await rnr.get_config()
    return out
"""
)

FAULTS = """
import asyncio, os, time

async def fetch(request, rnr):
    what = request.path.strip("/")
    if what == "raise":
        raise ValueError("boom with a secret-ish message")
    if what == "exit":
        os._exit(1)
    if what == "hang":
        time.sleep(60)
    if what == "slow":
        await asyncio.sleep(60)
    if what == "memory":
        block = bytearray(1 << 60)  # more than any host grants: MemoryError at once
        return str(len(block))
    if what == "oom":
        block = bytearray(2 * 1024 ** 3)  # past the worker's memory limit (512 MB): killed
        return str(len(block))
    return {"pid": os.getpid()}

async def tasks(rnr):
    raise RuntimeError("tasks failed")
"""

CRON = """
import asyncio

release = asyncio.Event()

async def tasks(rnr):
    print("cron tasks start", rnr.trigger.get("scheduled_time"))
    await release.wait()
    release.clear()

async def on_event(event, rnr):
    release.set()
"""

RELAY = """
async def on_event(event, rnr):
    print("hop", rnr.trigger["hops"], "from", event["source"])
    await rnr.emit("loop", {"n": rnr.trigger["hops"]})
"""

INTRUDER = """
import json, urllib.error, urllib.request

async def fetch(request, rnr):
    '''Use the runner's own API from inside a worker: ``request.json()`` lists
    ``[method, url]`` pairs; each answer's status and JSON body come back.'''
    out = []
    for method, url in request.json():
        try:
            asked = urllib.request.Request(url, method=method)
            with urllib.request.urlopen(asked, timeout=10) as answer:
                out.append([answer.status, answer.read().decode()])
        except urllib.error.HTTPError as exc:
            out.append([exc.code, exc.read().decode()])
    return out
"""

NOTICES_AS_REQUESTS = """
import asyncio

async def fetch(request, rnr):
    '''Send ``ready`` and ``log`` (notices) as requests, with an id: each must be answered.'''
    out = {}
    for op, args in (("ready", {"handlers": ["fetch"]}), ("log", {"line": "sent as a request"})):
        try:
            out[op] = {"result": await asyncio.wait_for(rnr._call(op, args), 20)}
        except TimeoutError:
            out[op] = "no answer"
        except Exception as exc:
            out[op] = {"raised": type(exc).__name__, "code": getattr(exc, "code", None),
                       "message": str(exc)}
    # The same through the raw channel, with an id that is not an integer.
    host = rnr._call.__self__
    answered = host._pending["x"] = asyncio.get_running_loop().create_future()
    host._emit({"id": "x", "op": "get_config", "args": {}})
    try:
        out["string_id"] = await asyncio.wait_for(answered, 20)
    except TimeoutError:
        out["string_id"] = "no answer"
    out["config"] = await rnr.get_config()  # the channel still works afterwards
    return out
"""

PRINTS_CONFIG = """
async def tasks(rnr):
    cfg = await rnr.get_config()
    print("the key is", cfg["api_key"])
    rnr.log.warning("nested: %s", cfg["nested"]["password"])
    raise RuntimeError("failed with " + cfg["api_key"])

async def fetch(request, rnr):
    cfg = await rnr.get_config()
    print("fetch sees", cfg["api_key"])
    raise ValueError(cfg["nested"]["password"])
"""
