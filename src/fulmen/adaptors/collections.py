"""The ``collections`` adaptor: the project's collections from a Python job, with the calls
of OpenFn's ``@openfn/language-collections`` (issue 19).

A job uses them as ``collections.get(...)``, ``collections.set(...)``,
``collections.remove(...)`` and ``collections.each(...)``: with the adaptor ``collections``,
and from a job on any other adaptor whose body names ``collections.`` (ws-worker gives such a
job the collections adaptor too). Each call builds an operation:

- ``get(name, key)``: the value stored at ``key`` (``{}`` when there is none) becomes
  ``state["data"]``; with a pattern (``"patient-*"``) or a query (``{"key": "p-*", "limit":
  10, "created_after": "2026-01-01"}``), the list of ``{"key", "value"}`` of every match,
  read from the answer as it arrives, a page (``page_size``, 1000) at a time.
- ``set(name, key_or_key_gen, values)``: store ``values`` under ``key``; with a function of
  ``(value, state, index)``, store each item of the list ``values`` under the key it gives.
  Values are stored as JSON. Sent 1000 items to a request.
- ``remove(name, key_or_pattern)``: delete one key, or every key matching a pattern.
- ``each(name, pattern, callback)``: ``callback(state, value, key)`` for each match, one at a
  time, none held in memory; then ``state["data"]`` is ``{"cursor": ...}``.

Where: the run's configuration has ``collections_endpoint`` and ``collections_token``, given
by the worker (its collections gateway, which reaches the run's own project's collections
and no other); ``collections_unavailable`` says why a run has none.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final
from urllib.parse import quote

import httpx2

from fulmen.adaptors.operation import Operation, State, expand, resolve_result

__all__ = ["CollectionsError", "collections"]

logger = logging.getLogger(__name__)

BATCH: Final = 1000
PAGE_SIZE: Final = 1000
TIMEOUT_S: Final = 60.0
#: Query names the collections API takes besides the key (Lightning's, and the adaptor's
#: camel-case spellings of them).
_QUERY: Final = {
    "cursor": "cursor",
    "created_after": "created_after",
    "createdAfter": "created_after",
    "created_before": "created_before",
    "createdBefore": "created_before",
}


class CollectionsError(Exception):
    """A collections call failed: ``code`` says how (``COLLECTION_NOT_FOUND``,
    ``UNAVAILABLE``, ``ACCESS_DENIED``, ``COLLECTIONS_ERROR``, ``BAD_ARGUMENTS``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def get(name: Any, query: Any = None) -> Operation:
    """The value at a key, or every ``{"key", "value"}`` matching a pattern or query."""

    async def run(state: State) -> State:
        collection, wanted = expand(name, state), _query(expand(query, state))
        key = wanted.get("key", "*")
        logger.info('Collections: downloading data from "%s"...', collection)
        if "*" in key or wanted.keys() - {"key"}:
            items: list[dict[str, Any]] = []

            async def keep(_state: State, value: Any, item_key: str) -> None:
                items.append({"key": item_key, "value": value})

            await _each(state, collection, wanted, keep)
            logger.info('Collections: fetched %d values from "%s"', len(items), collection)
            state["data"] = items
            return state
        async with _client(state) as client:
            response = await _send(client, "GET", _path(state, collection, key))
        if response.status_code == 204 or not response.content:
            logger.warning('Collections: key "%s" not found in "%s"', key, collection)
            state["data"] = {}
        else:
            state["data"] = json.loads(response.json()["value"])
        return state

    return Operation(run, name="collections.get")


def set(name: Any, key: Any, values: Any) -> Operation:
    """Store ``values`` under ``key``, or each item of ``values`` under ``key(item, state,
    index)``."""

    async def run(state: State) -> State:
        collection, resolved = expand(name, state), expand(values, state)
        if isinstance(key, str) and isinstance(resolved, list):
            pairs = [{"key": key, "value": json.dumps(resolved)}]
        else:
            items = resolved if isinstance(resolved, list) else [resolved]
            pairs = []
            for index, item in enumerate(items):
                made = key if isinstance(key, str) else key(item, state, index)
                if not isinstance(made, str):
                    raise CollectionsError(
                        "KEYGEN_ERROR",
                        f"the key function returned {type(made).__name__}, not a string key",
                    )
                pairs.append({"key": made, "value": json.dumps(item)})
        async with _client(state) as client:
            for start in range(0, len(pairs), BATCH):
                batch = pairs[start : start + BATCH]
                response = await _send(
                    client, "POST", _path(state, collection), json={"items": batch}
                )
                result = response.json()
                logger.info(
                    'Collections: set %s values in "%s"', result.get("upserted"), collection
                )
                if result.get("error"):
                    logger.warning("Collections: errors reported on set: %s", result["error"])
        return state

    return Operation(run, name="collections.set")


def remove(name: Any, query: Any) -> Operation:
    """Delete a key, or every key matching a pattern."""

    async def run(state: State) -> State:
        collection, wanted = expand(name, state), _query(expand(query, state))
        key = wanted.get("key")
        if not key:
            raise CollectionsError("BAD_ARGUMENTS", "remove() needs a key or a pattern")
        async with _client(state) as client:
            if "*" in key or wanted.keys() - {"key"}:
                response = await _send(
                    client, "DELETE", _path(state, collection), params=_params(wanted)
                )
            else:
                response = await _send(client, "DELETE", _path(state, collection, key))
        logger.info(
            'Collections: removed %s values in "%s"', response.json().get("deleted"), collection
        )
        return state

    return Operation(run, name="collections.remove")


def each(name: Any, query: Any, callback: Callable[..., Any]) -> Operation:
    """``callback(state, value, key)`` for every match, as the answer arrives."""

    async def run(state: State) -> State:
        collection, wanted = expand(name, state), _query(expand(query, state))
        cursor = await _each(state, collection, wanted, callback)
        state["data"] = {"cursor": cursor}
        return state

    return Operation(run, name="collections.each")


class _Namespace:
    """``collections.get`` and the rest, as the JavaScript adaptor's ``collections``."""

    get = staticmethod(get)
    set = staticmethod(set)
    remove = staticmethod(remove)
    each = staticmethod(each)
    CollectionsError = CollectionsError

    def __repr__(self) -> str:
        return "<collections: get, set, remove, each>"


#: What a job calls: ``collections.get("patients", "p-1")``.
collections = _Namespace()


# -- the requests --------------------------------------------------------------------------


def _query(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        return {"key": value}
    if isinstance(value, Mapping):
        return dict(value)
    raise CollectionsError(
        "BAD_ARGUMENTS", f"a key, a pattern or a query (a dict) is wanted, not {value!r}"
    )


def _params(wanted: Mapping[str, Any]) -> dict[str, str]:
    params = {"key": str(wanted.get("key", "*"))}
    for name, value in wanted.items():
        if name in _QUERY and value is not None:
            params[_QUERY[name]] = str(value)
    return params


def _endpoint(state: State) -> tuple[str, str]:
    config = state.get("configuration") or {}
    endpoint, token = config.get("collections_endpoint"), config.get("collections_token")
    if not endpoint or not token:
        why = config.get("collections_unavailable")
        raise CollectionsError(
            "UNAVAILABLE",
            str(why)
            if why
            else "collections_endpoint and collections_token are not set: collections are "
            "given to runs by a Fulmen worker",
        )
    return str(endpoint).rstrip("/"), str(token)


def _path(state: State, collection: Any, key: str | None = None) -> str:
    base, _ = _endpoint(state)
    path = f"{base}/{quote(str(collection), safe='')}"
    return path if key is None else f"{path}/{quote(key, safe='*')}"


def _client(state: State) -> httpx2.AsyncClient:
    endpoint, token = _endpoint(state)
    return httpx2.AsyncClient(
        timeout=TIMEOUT_S,
        headers={"Authorization": f"Bearer {token}"},
        trust_env=False,
        # Loading the CA store costs 40-70 ms a client, most of a get's time: only for an
        # endpoint that speaks TLS (the worker's gateway is plain HTTP on loopback).
        verify=endpoint.startswith("https:"),
    )


async def _send(client: httpx2.AsyncClient, method: str, url: str, **options: Any) -> Any:
    try:
        response = await client.request(method, url, **options)
    except httpx2.TransportError as exc:
        raise CollectionsError(
            "UNAVAILABLE", f"the collections API did not answer: {type(exc).__name__}: {exc}"
        ) from None
    if response.status_code >= 400:
        _raise(response, url, response.text)
    return response


def _raise(response: httpx2.Response, url: str, text: str) -> None:
    collection = url.rsplit("/collections/", 1)[-1].split("/")[0].split("?")[0]
    status = response.status_code
    if status == 404:
        raise CollectionsError(
            "COLLECTION_NOT_FOUND",
            f'the collection "{collection}" does not exist in this run\'s project',
        )
    if status in (401, 403):
        raise CollectionsError(
            "ACCESS_DENIED",
            f'access to the collection "{collection}" was refused ({status}): a run reaches '
            "its own project's collections only",
        )
    raise CollectionsError("COLLECTIONS_ERROR", f"the collections API answered {status}: {text}")


async def _each(
    state: State, collection: Any, wanted: Mapping[str, Any], callback: Callable[..., Any]
) -> str | None:
    """Page through the matches, handing each to ``callback`` as it is read; the last
    cursor (None when every match was read)."""
    limit = wanted.get("limit")
    page_size = int(wanted.get("page_size") or wanted.get("pageSize") or PAGE_SIZE)
    params = _params(wanted)
    cursor = params.pop("cursor", None)
    count = 0
    url = _path(state, collection)
    async with _client(state) as client:
        while True:
            page = page_size if limit is None else min(page_size, int(limit) - count)
            query = {**params, "limit": str(page), **({"cursor": cursor} if cursor else {})}
            try:
                async with client.stream("GET", url, params=query) as response:
                    if response.status_code >= 400:
                        _raise(response, url, (await response.aread()).decode(errors="replace"))
                    reader = _Items(response.aiter_text())
                    async for item in reader:
                        count += 1
                        await resolve_result(
                            callback(state, json.loads(item["value"]), item["key"])
                        )
                    cursor = reader.cursor
            except httpx2.TransportError as exc:
                raise CollectionsError(
                    "UNAVAILABLE", f"the collections API did not answer: {exc}"
                ) from None
            logger.debug('Collections: fetched a page of values from "%s"', collection)
            if not cursor or (limit is not None and count >= int(limit)):
                return cursor


class _Items:
    """The items of ``{"items": [...], "cursor": ...}`` as the text arrives, one object at a
    time (a page is never held whole); ``cursor`` once they are all read."""

    def __init__(self, chunks: AsyncIterator[str]) -> None:
        self._chunks = chunks
        self._buffer = ""
        self._at = 0
        self._ended = False
        self._decoder = json.JSONDecoder()
        self.cursor: str | None = None

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        await self._expect("{")
        while True:
            name = await self._value()
            await self._expect(":")
            if name == "items":
                await self._expect("[")
                if await self._peek() == "]":
                    self._at += 1
                else:
                    while True:
                        item = await self._value()
                        if isinstance(item, dict):
                            yield item
                        if await self._next_of(",]") == "]":
                            break
            elif name == "cursor":
                found = await self._value()
                self.cursor = found if isinstance(found, str) else None
            else:
                await self._value()
            if await self._next_of(",}") == "}":
                return

    async def _more(self) -> None:
        if self._ended:
            raise CollectionsError("COLLECTIONS_ERROR", "the collections answer ended early")
        self._buffer = self._buffer[self._at :]
        self._at = 0
        try:
            self._buffer += await anext(self._chunks)
        except StopAsyncIteration:
            self._ended = True

    async def _peek(self) -> str:
        while True:
            while self._at < len(self._buffer) and self._buffer[self._at].isspace():
                self._at += 1
            if self._at < len(self._buffer):
                return self._buffer[self._at]
            await self._more()

    async def _expect(self, char: str) -> None:
        if await self._peek() != char:
            raise CollectionsError(
                "COLLECTIONS_ERROR", f"not a collections answer (expected {char!r})"
            )
        self._at += 1

    async def _next_of(self, chars: str) -> str:
        found = await self._peek()
        if found not in chars:
            raise CollectionsError("COLLECTIONS_ERROR", f"not a collections answer ({found!r})")
        self._at += 1
        return found

    async def _value(self) -> Any:
        await self._peek()
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer, self._at)
            except json.JSONDecodeError:
                await self._more()  # a value cut by the chunk's end: read on
                continue
            # A number at the buffer's end may go on in the next chunk.
            if (
                end == len(self._buffer)
                and not self._ended
                and not isinstance(value, dict | str | list)
            ):
                await self._more()
                continue
            self._at = end
            return value
