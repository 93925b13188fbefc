"""What the management pages (credentials.py, triggers.py, settings.py, tokens.py) do with a
posted form: check it with the REST API's own documents and refusals, and say what is wrong
next to the field at fault; and how every page answers a caller whose role does not allow
what it asked (:func:`forbidden`, the one place, whatever the page: see :class:`Guarded`).

A form's values are checked by the same pydantic model the API checks a JSON body with
(``ProjectIn``, ``CredentialIn``, ...), so a value the API refuses the page refuses too, in the
same words; the store's refusals (a FulmenError with a code) are shown as they are. Nothing a
form posts is echoed back when it is a secret: a credential's value, a password, a key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError

from fulmen.coordinator import audit
from fulmen.coordinator.api import status_of
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import FETCH_HEADER, same_origin
from fulmen.errors import AccessError, FulmenError, InputError

__all__ = [
    "Guarded",
    "Problem",
    "blank_to_none",
    "cross_site",
    "forbidden",
    "json_object",
    "problem_of",
    "refusal",
]

_INTEGER: Final = re.compile(r"[+-]?[0-9]{1,30}")
#: Where a problem no field owns is shown: at the top of its form.
WHOLE_FORM: Final = ""


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a form was refused: ``form`` names the form on the page (several share a page),
    ``code`` is the error's stable code, ``fields`` maps a field's name to its message."""

    form: str
    code: str
    message: str
    status: int
    fields: Mapping[str, str] = field(default_factory=dict)

    def at(self, form: str, name: str = WHOLE_FORM) -> str | None:
        """The message for field ``name`` of ``form`` (the whole form's when ``name`` is
        empty), else ``None``: what the templates ask."""
        if form != self.form:
            return None
        if name == WHOLE_FORM:
            return self.message
        return self.fields.get(name)


def problem_of(form: str, error: Exception, names: Iterable[str] = ()) -> Problem:
    """A refusal of ``form`` from a pydantic ValidationError (its first error, by the last
    part of its location that is one of the form's ``names``) or a FulmenError (by its
    ``field``, when it has one)."""
    known = set(names)
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = next((str(p) for p in reversed(first["loc"]) if str(p) in known), WHOLE_FORM)
        message = f"{where or 'form'}: {first['msg']}"
        fields = {where: first["msg"]} if where else {}
        return Problem(form, "invalid_form", message, 422, fields)
    if isinstance(error, FulmenError):
        name = getattr(error, "field", None)
        where = name.split(".")[0].split("[")[0] if isinstance(name, str) else WHOLE_FORM
        fields = {where: error.message} if where in known else {}
        return Problem(form, error.code, error.message, status_of(error), fields)
    raise TypeError(f"not a refusal: {error!r}")


def blank_to_none(values: Mapping[str, str], numbers: Iterable[str] = ()) -> dict[str, Any]:
    """A form's values as the API's documents take them: blank fields left out (an empty
    number field means "no value", the model's default, often "no limit"), and the fields
    named in ``numbers`` as integers when they are written as one (the documents are strict:
    ``"3"`` is not a number; text that is not one is left for the model to refuse, by name).
    Other values are kept as typed (a password's spaces are part of it)."""
    wanted = set(numbers)
    out: dict[str, Any] = {}
    for name, value in values.items():
        if not value.strip():
            continue
        text = value.strip()
        out[name] = int(text) if name in wanted and _INTEGER.fullmatch(text) else value
    return out


def json_object(text: str, name: str) -> dict[str, Any]:
    """``text`` read as a JSON object, for field ``name``.

    Raises:
        InputError: ``bad_json`` naming the line and column where it stops being JSON, or
            ``not_an_object``; the text itself is never quoted (it may be a secret).
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"not JSON: {error.msg} at line {error.lineno}, column {error.colno}",
            code="bad_json",
            field=name,
        ) from None
    if not isinstance(value, dict):
        raise InputError(
            f"a JSON object is needed ({{...}}), not {type(value).__name__}",
            code="not_an_object",
            field=name,
        )
    return value


def cross_site(request: Request) -> bool:
    """Whether a POST came from another site's page (session.same_origin), which every
    management form refuses with :func:`refusal`."""
    return not same_origin(request)


def refusal() -> HTMLResponse:
    """403: the page says why, and where to make the change instead."""
    return page("refused.html", 403)


def forbidden(request: Request, error: AccessError) -> Response:
    """The answer to a request whose caller may not do what it asked (access.require's
    AccessError): 403 with the reason (``forbidden``), or 404 (``not_a_member``: the thing
    is not theirs to know of). A page gets a page saying so; the pages' script (which sends
    ``x-fulmen-fetch``) and the event stream get the API's JSON error. Nothing was changed.
    """
    status = status_of(error)
    if request.headers.get(FETCH_HEADER) or request.url.path.endswith("/events"):
        body = {"error": {"code": error.code, "message": error.message}}
        return JSONResponse(body, status, headers={"Cache-Control": "no-store"})
    return page("forbidden.html", status, error=error, missing=status == 404)


class Guarded(APIRoute):
    """Every dashboard route: an AccessError raised while it answers is answered by
    :func:`forbidden`, so that a page refuses by calling access.require (or guard.py) and
    nothing else, and every refusal goes through one function (which records a role too weak
    in the audit trail, as the API's error handler does)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        answer = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await answer(request)
            except AccessError as error:
                if error.code == "forbidden":  # a role too weak: the audit trail's
                    await audit.refused(request, error)
                return forbidden(request, error)

        return guarded
