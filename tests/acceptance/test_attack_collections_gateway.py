"""Attacks on the worker's collections gateway from inside a real sandboxed run (issue 19):
``fulmen server`` and ``fulmen worker`` as a user runs them, job code that speaks raw HTTP to
the gateway (absolute-form targets, encoded dots and slashes, Host games, a smuggled body,
a header split, a second Authorization), that looks through ``/proc``, its own memory and
every string its Python objects hold for a run token (the JWT that would join the run's
channel, or call the coordinator as the run),
and whose collections token, carried out of the run, is tried again once the run has ended.
"""

from __future__ import annotations

import asyncio
import http.client
import uuid
from pathlib import Path
from typing import Any

import pytest

from fulmen_testing.e2e import Api, system

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


PROBE = r"""
# Named so that the run is given collections.: the gateway's token and endpoint.
import os
import re
import socket
from urllib.parse import urlsplit

#: The header of every run token (RS256, PyJWT's): {"alg":"RS256","typ":"JWT"}.
JWT = b"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."


def raw(host, port, data):
    try:
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(data)
        chunks = []
        while True:
            c = s.recv(65536)
            if not c:
                break
            chunks.append(c)
        s.close()
    except OSError as exc:
        return ["unreachable", type(exc).__name__]
    text = b"".join(chunks).decode("latin-1")
    status = int(text.split(" ")[1]) if text.startswith("HTTP/") else text[:40]
    return [status, text[-300:]]


def own_memory_holds(needle):
    found = False
    try:
        maps, mem = open("/proc/self/maps"), open("/proc/self/mem", "rb", 0)
    except OSError as exc:
        return type(exc).__name__  # unreadable: nothing to find there either
    with maps, mem:
        for line in maps:
            span, perms = line.split()[:2]
            if "r" not in perms or "[vvar]" in line or "[vsyscall]" in line:
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            try:
                mem.seek(start)
                if needle in mem.read(end - start):
                    found = True
            except (OSError, OverflowError, ValueError):
                continue
    return found


def objects_hold(needle):
    # Whether any string a live Python object of this process holds has a token starting
    # with the needle: what job code can reach when its process memory is shut to it. A dict
    # of strings only is not tracked by gc: it is found as what a tracked object refers to.
    import gc

    token = re.compile(re.escape(needle) + r"[A-Za-z0-9_-]{20,}[.][A-Za-z0-9_-]{20,}")

    def holds(value):
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        return isinstance(value, str) and token.search(value) is not None

    for obj in gc.get_objects():
        for ref in gc.get_referents(obj):
            inner = []
            if isinstance(ref, dict):
                inner = [*ref.keys(), *ref.values()]
            elif isinstance(ref, (list, tuple)):
                inner = list(ref)
            if holds(ref) or any(holds(i) for i in inner):
                return True
    return False


@fn
def probe(state):
    config = state["configuration"]
    endpoint = urlsplit(config["collections_endpoint"])
    token = config["collections_token"]
    host, port = endpoint.hostname, endpoint.port
    coordinator = state["data"]["coordinator"]
    auth = f"Authorization: Bearer {token}\r\n"

    def ask(line, extra=""):
        return raw(host, port, f"{line}\r\nHost: gw\r\n{auth}{extra}\r\n".encode("latin-1"))

    seen = {
        "absolute": ask(f"GET http://127.0.0.1:{coordinator}/api/runs HTTP/1.1"),
        "absolute_collections": ask(
            f"GET http://127.0.0.1:{coordinator}/collections/things HTTP/1.1"
        ),
        "encoded_dots": ask("GET /collections/things/%2e%2e/%2e%2e/api/runs HTTP/1.1"),
        "encoded_slash": ask("GET /collections/..%2Fapi%2Fruns HTTP/1.1"),
        "encoded_slash_upper": ask("GET /collections/things%2F..%2F..%2Fapi HTTP/1.1"),
        "backslash": ask("GET /collections/things/..\\..\\api HTTP/1.1"),
        "empty_name": ask("GET /collections//api/runs HTTP/1.1"),
        "lookalike": ask("GET /collectionsX/things HTTP/1.1"),
        "asterisk": ask("OPTIONS * HTTP/1.1"),
        "connect": ask(f"CONNECT 127.0.0.1:{coordinator} HTTP/1.1"),
        "host_game": raw(
            host,
            port,
            f"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1:{coordinator}\r\n{auth}\r\n".encode(),
        ),
        "smuggle": ask(
            "POST /collections/things HTTP/1.1",
            "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        ),
        "header_split": raw(
            host,
            port,
            b"GET /collections/things/k1 HTTP/1.1\r\nHost: gw\r\nX-A: a\rX-B: b\r\n"
            + auth.encode()
            + b"\r\n",
        ),
        "second_auth": ask(
            "GET /collections/things/k1 HTTP/1.1", "Authorization: Bearer made-up\r\n"
        ),
        "double_encoded": ask("GET /collections/things/%252e%252e%252fapi%252fruns HTTP/1.1"),
        "own": ask("GET /collections/things/k1 HTTP/1.1"),
    }
    # A run token anywhere this run can read: its environment, any process's environ or
    # command line, its own memory.
    jwt_seen = JWT in b"".join(f"{k}={v}".encode() for k, v in os.environ.items())
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        pids = []  # the sandbox may not let a run list /proc at all
    for pid in pids + ["self", "1"]:
        for name in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    jwt_seen = jwt_seen or JWT in f.read()
            except OSError:
                continue
    seen["jwt_in_proc_or_env"] = jwt_seen
    seen["jwt_in_memory"] = own_memory_holds(JWT)
    seen["jwt_in_objects"] = objects_hold(JWT.decode())
    seen["planted"] = {"token": JWT.decode() + "a" * 30 + "." + "b" * 30}
    seen["planted_found"] = objects_hold(JWT.decode())  # the search finds one that is there
    del seen["planted"]
    seen["endpoint"] = [host, port]
    # Carried out of the run past the scrubber: the token reversed.
    seen["carried"] = token[::-1]
    state["data"] = seen
    return state
"""
SET = 'collections.set("things", "k1", {"n": 1})\n'


def _gateway(host: str, port: int, token: str) -> int:
    connection = http.client.HTTPConnection(host, port, timeout=5)
    connection.request(
        "GET", "/collections/things/k1", headers={"Authorization": f"Bearer {token}"}
    )
    return connection.getresponse().status


async def test_job_code_reaches_nothing_but_its_collections_through_the_gateway(
    tmp_path: Path,
) -> None:
    async with system(tmp_path) as (server, _, api):
        ours = await project(api, "ours")
        await collection(api, ours, "things")
        set_, probe = await asyncio.gather(
            workflow(api, ours, {"set": SET}), workflow(api, ours, {"probe": PROBE})
        )
        run, _ = await run_once(api, set_)
        assert run["state"] == "success", run
        run, final = await run_once(api, probe, {"coordinator": server.port})
        assert run["state"] == "success", (run, await _logged(api, run))
        seen: dict[str, Any] = final["data"]
        assert seen["own"][0] == 200 and '"key":"k1"' in seen["own"][1], seen["own"]
        for attack in ("absolute", "absolute_collections", "lookalike", "host_game"):
            assert seen[attack][0] == 404, (attack, seen[attack])
        for attack in ("encoded_dots", "encoded_slash", "encoded_slash_upper", "empty_name"):
            assert seen[attack][0] == 400, (attack, seen[attack])
        assert seen["backslash"][0] == 400, seen["backslash"]
        assert seen["asterisk"][0] == 405 and seen["connect"][0] in (400, 405), seen
        assert seen["smuggle"][0] == 400 and seen["header_split"][0] == 400, seen
        assert seen["second_auth"][0] == 401, seen["second_auth"]
        assert seen["double_encoded"][0] in (200, 204), seen["double_encoded"]  # a key, no more
        # No run token anywhere the job can read, not even in its own memory.
        assert seen["jwt_in_proc_or_env"] is False, seen
        assert seen["jwt_in_memory"] is not True and seen["jwt_in_objects"] is False, seen
        assert seen["planted_found"] is True
        # The collections token, carried out, opens nothing once its run has ended.
        host, port = seen["endpoint"]
        token = seen["carried"][::-1]
        status = await asyncio.to_thread(_gateway, host, port, token)
        assert status == 401


async def project(api: Api, name: str) -> str:
    created = await api.http.post("/api/projects", json={"name": name}, headers=api.headers)
    assert created.status_code in (200, 201), created.text
    project_id: str = created.json()["id"]
    return project_id


async def collection(api: Api, project_id: str, name: str) -> None:
    created = await api.http.post(
        f"/api/projects/{project_id}/collections", json={"name": name}, headers=api.headers
    )
    assert created.status_code == 201, created.text


async def workflow(api: Api, project_id: str, jobs: dict[str, str]) -> str:
    """A workflow of one job behind a webhook (as test_e2e_collections makes them)."""
    suffix = uuid.uuid4().hex[:8]
    [(name, body)] = jobs.items()
    document = {
        "name": f"wf-{suffix}",
        "jobs": [{"id": f"{name}-{suffix}", "name": name, "adaptor": "common", "body": body}],
        "triggers": [{"id": f"hook-{suffix}", "type": "webhook"}],
        "edges": [{"source_trigger_id": f"hook-{suffix}", "target_job_id": f"{name}-{suffix}"}],
    }
    created = await api.http.post(
        f"/api/projects/{project_id}/workflows", json=document, headers=api.headers
    )
    assert created.status_code == 201, created.text
    return f"hook-{suffix}"


async def run_once(api: Api, hook: str, body: Any = None) -> tuple[dict[str, Any], Any]:
    run = await api.finished(await api.hook(hook, body or {}), timeout=90)
    final = run["final_dataclip_id"]
    return run, (await api.dataclip(final) if final else None)


async def _logged(api: Api, run: dict[str, Any]) -> str:
    return "\n".join(line["message"] for line in await api.logs(run["id"]))
