"""The headers every dashboard response carries, whatever answered it (a page, a fragment,
a static file, the sign-in redirect, a 401, a 413 from the body limit):

* ``Content-Security-Policy``: scripts, styles and everything else only from the
  coordinator itself, never inline (the templates carry no ``<script>`` body, no ``on…``
  handler attribute and no ``style`` attribute: dashboard.js and dashboard.css do that
  work); no page may frame the dashboard, no ``<base>`` may redirect its links, and forms
  post only to it.
* ``Referrer-Policy: same-origin``: a run's URL (its id, the filters) is not sent to the
  sites a run's data links to. Not ``no-referrer``: under it Chromium sends ``Origin: null``
  with the dashboard's own forms, which session.same_origin must then refuse.
* ``X-Content-Type-Options: nosniff``: a dataclip served as text stays text.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_SECURITY_POLICY", "HEADERS", "SecurityHeaders"]

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
)


class SecurityHeaders:
    """ASGI middleware: adds :data:`HEADERS` to the HTTP responses of paths that
    ``applies(path)`` says are the dashboard's."""

    def __init__(self, app: ASGIApp, *, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    def applies(self, path: str) -> bool:
        return path in ("/", self.prefix) or path.startswith(self.prefix + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.applies(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                added = [(name, value) for name, value in HEADERS if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
