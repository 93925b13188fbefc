"""Attacks on the collections API jobs call (issue 19), as a hostile job or user would try
them, on a real coordinator over loopback, on SQLite and PostgreSQL: each test is named for
the attack and asserts the refusal the attacker sees, and that nothing of another project's
was read or changed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx2
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fulmen.coordinator.dashboard.session import COOKIE
from fulmen.coordinator.run_tokens import RunTokens
from fulmen.errors import NotFoundError
from fulmen.reasons import ExitReason, Reason
from fulmen.store import CollectionLimits, EnqueueRequest, RunCompletion, SQLStore, open_store
from fulmen.store.paging import encode_cursor
from fulmen.tokens import mint_worker_token
from fulmen_testing.coordinator import CREDENTIAL_KEY, seed, serve
from fulmen_testing.sign_in import open_session
from fulmen_testing.teams import Team, team

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class World:
    store: SQLStore
    http: httpx2.AsyncClient
    team: Team
    tokens: RunTokens
    #: A live run's token in the team's project (collection ``mine``).
    run_token: str
    #: A live run's token in another project (collection ``theirs``, holding ``secret-1``).
    their_token: str
    their_workflow: str

    def run(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.run_token}"}

    def mint(self, run_id: str) -> str:
        return self.tokens.mint(run_id, now=time.time(), run_timeout=300, grace=10)


@pytest.fixture
async def world(store_url: str) -> AsyncIterator[World]:
    async with (
        await open_store(store_url, credential_key=CREDENTIAL_KEY) as store,
        serve(
            store,
            collection_max_items=1000,
            collection_max_value_bytes=1000,
            max_dataclip_size_mb=1,
        ) as served,
        httpx2.AsyncClient(base_url=served.base_url, timeout=60) as http,
    ):
        people = await team(store)
        other = await seed(store)
        await store.create_collection(people.project_id, "mine")
        theirs = await store.create_collection(other.project_id, "theirs")
        await store.put_collection_items(theirs.id, [("secret-1", "s3cret")], _limits())
        made = await store.enqueue(EnqueueRequest(workflow_id=people.seeded.workflow_id))
        their_run = await store.enqueue(EnqueueRequest(workflow_id=other.workflow_id))
        tokens = served.coordinator.run_tokens
        world = World(store, http, people, tokens, "", "", other.workflow_id)
        world.run_token = world.mint(made.run_id)
        world.their_token = world.mint(their_run.run_id)
        yield world


def _limits() -> CollectionLimits:
    return CollectionLimits(max_value_bytes=1000, max_items=1000)


async def _theirs_untouched(world: World) -> None:
    theirs = await world.store.get_collection("theirs")
    item = await world.store.get_collection_item(theirs.id, "secret-1")
    assert theirs.item_count == 1 and item is not None and item.value == "s3cret"


async def _chunks(chunk: bytes, times: int) -> AsyncIterator[bytes]:
    for _ in range(times):
        yield chunk


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims_of(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    claims: dict[str, object] = orjson.loads(base64.urlsafe_b64decode(payload + "=="))
    return claims


async def test_a_run_token_cannot_reach_another_projects_collection_by_any_route(
    world: World,
) -> None:
    http, run = world.http, world.run()
    for method, path, params, body in (
        ("GET", "/collections/theirs", {"key": "*"}, None),
        ("GET", "/collections/theirs/secret-1", None, None),
        ("PUT", "/collections/theirs/secret-1", None, {"value": "hijacked"}),
        ("POST", "/collections/theirs", None, {"items": [{"key": "secret-1", "value": "x"}]}),
        ("DELETE", "/collections/theirs/secret-1", None, None),
        ("DELETE", "/collections/theirs", {"key": "*"}, None),
        ("DELETE", "/collections/theirs", {"key": "secret-*"}, None),
        ("DELETE", "/collections/theirs", None, None),
        ("GET", "/collections/THEIRS", None, None),
        ("GET", "/collections/theirs%2Fsecret-1", None, None),
        ("GET", "/collections/mine/../theirs/secret-1", None, None),
    ):
        answer = await http.request(method, path, params=params, json=body, headers=run)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["code"] == "not_found" and "s3cret" not in answer.text
    await _theirs_untouched(world)


async def test_a_finished_runs_token_is_refused(world: World) -> None:
    """A job that kept its run's token (an OpenFn ws-worker hands it to the job) cannot
    use it once the run is over, though the token's time has not run out."""
    made = await world.store.enqueue(EnqueueRequest(workflow_id=world.team.seeded.workflow_id))
    token = world.mint(made.run_id)
    before = await world.http.get("/collections/mine", headers=world.run(token))
    assert before.status_code == 200
    await world.store.claim(10, ["*"], "worker-1")
    await world.store.join_run(made.run_id)
    await world.store.start_run(made.run_id)
    await world.store.complete_run(made.run_id, RunCompletion(ExitReason(Reason.SUCCESS)))
    for method, path, body in (
        ("GET", "/collections/mine", None),
        ("GET", "/collections/mine/k", None),
        ("PUT", "/collections/mine/k", {"value": "late"}),
        ("POST", "/collections/mine", {"items": [{"key": "k", "value": "late"}]}),
        ("DELETE", "/collections/mine", None),
    ):
        after = await world.http.request(method, path, json=body, headers=world.run(token))
        assert after.status_code == 401, (method, path, after.text)
        assert after.json()["code"] == "unauthorized"
    assert (await world.store.get_collection("mine")).item_count == 0


async def test_forged_tokens_are_401(world: World) -> None:
    """alg none, HS256 keyed with the coordinator's public key, a token signed by another
    RSA key, a worker's token, a live token with its claims swapped for another run's."""
    claims = _claims_of(world.run_token)
    their_claims = _claims_of(world.their_token)
    # The attacker knows the public key: it is published for ws-workers to check tokens.
    public_pem = world.tokens._public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def jws(header: dict[str, object], body: dict[str, object], sign: bytes | None) -> str:
        signed = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(body))}"
        if sign is None:
            return signed + "."
        mac = hmac.new(sign, signed.encode(), hashlib.sha256).digest()
        return f"{signed}.{_b64(mac)}"

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    head, _, signature = world.run_token.split(".")
    forged = (
        jws({"alg": "none", "typ": "JWT"}, their_claims, None),
        jws({"alg": "None"}, claims, None),
        jws({"alg": "HS256", "typ": "JWT"}, their_claims, public_pem),
        RunTokens(other_key).mint(
            str(their_claims["id"]), now=time.time(), run_timeout=60, grace=1
        ),
        mint_worker_token("a-worker-secret-of-32-bytes-or-more", "worker-1", now=time.time()),
        f"{head}.{_b64(orjson.dumps(their_claims))}.{signature}",
        f"{world.run_token}.{signature}",
        world.run_token + "x",
        "fmn_" + world.run_token,
    )
    for token in forged:
        answer = await world.http.get("/collections/theirs", headers=world.run(token))
        assert answer.status_code == 401, (token, answer.text)
        assert answer.json()["code"] == "unauthorized"
        assert answer.headers["www-authenticate"] == "Bearer"
    await _theirs_untouched(world)


async def test_a_viewers_api_token_cannot_write_by_any_route(world: World) -> None:
    http, viewer = world.http, world.team.bearer("viewer")
    await http.put("/collections/mine/keep", json={"value": "v"}, headers=world.run())
    for method, path, params, body in (
        ("PUT", "/collections/mine/k", None, {"value": "v"}),
        ("POST", "/collections/mine", None, {"items": [{"key": "k", "value": "v"}]}),
        ("DELETE", "/collections/mine/keep", None, None),
        ("DELETE", "/collections/mine", {"key": "*"}, None),
        ("DELETE", "/collections/mine", None, None),
        ("DELETE", "/api/collections/mine", None, None),
    ):
        answer = await http.request(method, path, params=params, json=body, headers=viewer)
        assert answer.status_code == 403, (method, path, answer.text)
    mine = await world.store.get_collection("mine")
    assert mine.item_count == 1 and await world.store.get_collection_item(mine.id, "k") is None


async def test_patterns_with_sql_wildcards_match_only_themselves(world: World) -> None:
    http, run = world.http, world.run()
    keys = ["a%b", "a_b", "axb", "a[b", "a?b", "a\\b", "abc", "a'b"]
    items = [{"key": k, "value": "v"} for k in keys]
    assert (await http.post("/collections/mine", json={"items": items}, headers=run)).is_success
    for pattern, expected in (
        ("a%b", ["a%b"]),
        ("a_b", ["a_b"]),
        ("a[b", ["a[b"]),
        ("a[x]b", []),
        ("a?b", ["a?b"]),
        ("a\\b", ["a\\b"]),
        ("a\\*", ["a\\b"]),
        ("a'b", ["a'b"]),
        ("' OR 1=1 --", []),
        ("%", []),
        ("_*", []),
    ):
        answer = await http.get("/collections/mine", params={"key": pattern}, headers=run)
        assert answer.status_code == 200, (pattern, answer.text)
        assert [i["key"] for i in answer.json()["items"]] == expected, pattern
    gone = await http.delete("/collections/mine", params={"key": "a%*"}, headers=run)
    assert gone.json()["deleted"] == 1
    assert (await world.store.get_collection("mine")).item_count == len(keys) - 1
    await _theirs_untouched(world)


async def test_costly_patterns_and_long_keys_answer(world: World) -> None:
    """Patterns a backtracking matcher takes exponential time on, and 10,000 characters of
    key or pattern: answered, and a key over 255 characters refused."""
    http, run = world.http, world.run()
    items = [{"key": "a" * 255, "value": "v"}, {"key": "a" * 200 + "c", "value": "v"}]
    assert (await http.post("/collections/mine", json={"items": items}, headers=run)).is_success
    for pattern, expected in (
        ("*a" * 120 + "b", 0),
        ("*" * 10_000, 2),
        ("a*" * 5000, 0),
        ("a*" * 255, 1),
        ("*a" * 5000, 0),
        ("x" * 10_000, 0),
    ):
        answer = await http.get("/collections/mine", params={"key": pattern}, headers=run)
        assert answer.status_code in (200, 400), answer.text
        if answer.status_code == 200:
            assert len(answer.json()["items"]) == expected, pattern[:20]
    long_key = quote("k" * 10_000)
    for method, body in (("PUT", {"value": "v"}), ("GET", None), ("DELETE", None)):
        answer = await http.request(method, f"/collections/mine/{long_key}", json=body, headers=run)
        assert answer.status_code in (204, 200, 422), (method, answer.status_code)
        if method == "PUT":
            assert answer.json()["code"] == "bad_key"
    bulk = {"items": [{"key": "k" * 10_000, "value": "v"}]}
    answer = await http.post("/collections/mine", json=bulk, headers=run)
    assert (answer.status_code, answer.json()["code"]) == (422, "bad_key")
    assert (await world.store.get_collection("mine")).item_count == 2


async def test_a_body_over_the_limit_is_413_and_nothing_is_stored(world: World) -> None:
    http, run = world.http, world.run()
    huge = {"items": [{"key": f"k{i}", "value": "x" * 900} for i in range(1500)]}
    answer = await http.post("/collections/mine", json=huge, headers=run)
    assert answer.status_code == 413, answer.text
    one = await http.put("/collections/mine/k", content=b'{"value": "' + b"x" * 2_000_000 + b'"}')
    assert one.status_code in (401, 413)
    try:  # the coordinator answers 413 as soon as the limit is passed, and stops reading
        chunked = await http.put(
            "/collections/mine/k", content=_chunks(b"x" * 65536, 40), headers=run
        )
        assert chunked.status_code == 413, chunked.text
    except (httpx2.ReadError, httpx2.WriteError, httpx2.RemoteProtocolError):
        pass
    assert (await world.store.get_collection("mine")).item_count == 0


async def test_bodies_that_are_not_json_or_not_the_routes_shape_are_400_or_422(
    world: World,
) -> None:
    http, run = world.http, world.run()
    for body in (
        b"",
        b"\xff\xfe",
        b"[" * 100_000,
        b'{"value": NaN}',
        b"[]",
        b'"x"',
        b"null",
        b'{"items": {}}',
        b'{"items": null}',
        b'{"items": "k"}',
        b'{"items": [{"key": "k", "value": "v"}], "items": 1}',
    ):
        bulk = await http.post("/collections/mine", content=body, headers=run)
        assert bulk.status_code in (400, 422), (body[:30], bulk.text)
        assert bulk.json()["code"] in ("bad_request", "bad_item"), body[:30]
        one = await http.put("/collections/mine/k", content=body, headers=run)
        assert one.status_code in (200, 400), (body[:30], one.text)
        assert one.json().get("upserted", 0) == 0
    assert (await world.store.get_collection("mine")).item_count == 0


async def test_unicode_and_control_keys_are_stored_exactly_or_refused(world: World) -> None:
    http, run = world.http, world.run()
    for key in ("ключ", "鍵/子", "e\u0301", "é", "🔑", "tab\tkey", "cr\rkey"):
        path = f"/collections/mine/{quote(key, safe='')}"
        put = await http.put(path, json={"value": key}, headers=run)
        assert put.json() == {"upserted": 1, "error": None}, key
        assert (await http.get(path, headers=run)).json()["value"] == key
    assert (await world.store.get_collection("mine")).item_count == 7
    for body in (
        b'{"items": [{"key": "nul\\u0000key", "value": "v"}]}',
        b'{"items": [{"key": "\\ud800", "value": "v"}]}',
        b'{"items": [{"key": "k", "value": "\\udfff"}]}',
    ):
        answer = await http.post("/collections/mine", content=body, headers=run)
        assert answer.status_code in (400, 422), (body, answer.text)
    for path in (
        "/collections/mine/nul%00key",
        "/collections/mine/%ED%A0%80",
        "/collections/mine/%FF",
    ):  # bytes that are not UTF-8 come through as U+FFFD (the server's decoding of a path)
        answer = await http.put(path, json={"value": "v"}, headers=run)
        assert answer.status_code in (200, 422), (path, answer.text)
    listed = await http.get("/collections/mine", headers=run)
    keys = [item["key"] for item in listed.json()["items"]]
    assert listed.status_code == 200 and not any("\x00" in k for k in keys)
    assert all(k.encode("utf-8") for k in keys)


async def test_a_project_cannot_take_over_another_projects_collection_name(world: World) -> None:
    editor = world.team.bearer("editor")
    base = f"/api/projects/{world.team.project_id}/collections"
    for name in ("theirs", "THEIRS", "theirs ", "theirs\u200b", "the%69rs"):
        answer = await world.http.post(base, json={"name": name}, headers=editor)
        assert answer.status_code in (409, 422), (name, answer.text)
    await _theirs_untouched(world)
    assert (await world.store.get_collection("theirs")).project_id != world.team.project_id


async def test_a_cursor_cannot_read_another_collections_items(world: World) -> None:
    http, run = world.http, world.run()
    items = {"items": [{"key": f"k{i}", "value": "v"} for i in range(3)]}
    await http.post("/collections/mine", json=items, headers=run)
    theirs = await world.http.get(
        "/collections/theirs", params={"limit": 1}, headers=world.run(world.their_token)
    )
    assert theirs.status_code == 200
    for cursor in (
        encode_cursor(0),
        encode_cursor(-(10**12)),
        _b64(b"[1" + b"0" * 40 + b"]"),
        encode_cursor(2**63 - 1),
        encode_cursor("1 OR 1=1"),
        _b64(b"[1.5]"),
        encode_cursor(1, 2),
        "%",
        "A" * 10_000,
    ):
        answer = await http.get("/collections/mine", params={"cursor": cursor}, headers=run)
        assert answer.status_code in (200, 400), (cursor[:20], answer.text)
        if answer.status_code == 200:
            assert {i["key"] for i in answer.json()["items"]} <= {"k0", "k1", "k2"}
    await _theirs_untouched(world)


async def test_garbage_time_filters_are_400(world: World) -> None:
    http, run = world.http, world.run()
    for name in ("created_after", "created_before", "updated_after", "updated_before"):
        for value in (
            "yesterday",
            "2026-13-45T00:00:00Z",
            "99999-01-01T00:00:00Z",
            "' OR 1=1 --",
            "NaN",
            "1e309",
            "2026-01-01T00:00:00+99:00",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "x" * 10_000,
        ):
            answer = await http.get("/collections/mine", params={name: value}, headers=run)
            assert answer.status_code == 400, (name, value[:20], answer.text)
            assert answer.json()["field"] == name
        for value in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "2026-01-01"):
            answer = await http.get("/collections/mine", params={name: value}, headers=run)
            assert answer.status_code == 200, (name, value, answer.text)


async def test_an_api_token_cannot_tell_another_projects_collection_from_none(
    world: World,
) -> None:
    """Probing names: someone without a role in the collection's project gets, for a name that
    is another project's, exactly what a name nobody has gets."""
    http = world.http
    for who in ("outsider", "viewer", "editor"):
        bearer = world.team.bearer(who)
        for path in ("/collections/{}", "/collections/{}/secret-1", "/api/collections/{}"):
            theirs = await http.get(path.format("theirs"), headers=bearer)
            unknown = await http.get(path.format("nothing"), headers=bearer)
            assert theirs.status_code == unknown.status_code == 404, (who, path)
            assert theirs.text == unknown.text.replace("nothing", "theirs"), (who, path)
    await _theirs_untouched(world)


async def test_keys_and_values_a_job_writes_are_inert_on_the_dashboard(world: World) -> None:
    """Stored XSS: a job writes markup as a key and as a value; a person browses them."""
    key = "<script>alert('k')</script>"
    value = '{"a": "</pre><img src=x onerror=alert(1)>"}'
    put = await world.http.put(
        f"/collections/mine/{quote(key, safe='')}", json={"value": value}, headers=world.run()
    )
    assert put.json()["upserted"] == 1
    async with httpx2.AsyncClient(
        base_url=str(world.http.base_url),
        cookies={COOKIE: await open_session(world.store, world.team.users["viewer"].id)},
    ) as browser:
        for path, params in (
            ("/ui/collections/mine", {}),
            ("/ui/collections/mine", {"key": "<script>*"}),
            ("/ui/collections/mine/item", {"key": key}),
        ):
            page = await browser.get(path, params=params)
            assert page.status_code == 200, (path, page.text)
            assert "<script>alert" not in page.text and "<img src=x" not in page.text, path
            assert "&lt;script&gt;alert" in page.text or "&lt;img" in page.text, path


async def test_a_run_token_opens_nothing_of_the_management_api(world: World) -> None:
    """A run's token is for /collections only: not the REST API's collection routes."""
    project = world.team.project_id
    for method, path, body in (
        ("GET", "/api/collections/mine", None),
        ("DELETE", "/api/collections/mine", None),
        ("GET", f"/api/projects/{project}/collections", None),
        ("POST", f"/api/projects/{project}/collections", {"name": "made-by-a-run"}),
    ):
        answer = await world.http.request(method, path, json=body, headers=world.run())
        assert answer.status_code == 401, (method, path, answer.text)
    assert (await world.store.get_collection("mine")).project_id == project
    with pytest.raises(NotFoundError):
        await world.store.get_collection("made-by-a-run")


async def test_a_time_an_offset_takes_out_of_range_is_400_on_the_audit_trail_too(
    world: World,
) -> None:
    """The same reading of times (coordinator/moments.py) serves the audit trail's filters."""
    path = f"/api/projects/{world.team.project_id}/audit"
    for name in ("since", "until"):
        answer = await world.http.get(
            path, params={name: "0001-01-01T00:00:00+01:00"}, headers=world.team.bearer("owner")
        )
        assert answer.status_code in (400, 422), answer.text
        assert answer.json()["error"]["code"] == "bad_time"
