"""The explorer's two guards, as ASGI wrappers that run before any route:

HostCheck   only requests whose Host is a loopback name, the address listened on or a name given with
            --allow-host are answered (a web page cannot reach the server through DNS rebinding);
BodyLimit   a request body is counted as it arrives, chunked or not, and refused with 413 past MAX_BODY.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taller.apps.web.refusals import QUOTED, refusal
from taller.errors import TallerError

MAX_BODY = 1024 * 1024  # bytes of request body
LOOPBACK = ("localhost", "127.0.0.1", "::1")  # the Host names always answered
ANY_ADDRESS = ("0.0.0.0", "::", "")  # listening on every interface: no single name to answer to


def header(scope: Scope, name: bytes) -> str | None:
    """The value of the request header `name` (lower case), or None."""
    return next((value.decode("latin-1") for key, value in scope["headers"] if key == name), None)


def host_name(value: str) -> str:
    """The name in a Host header without its port ('localhost:8000' → 'localhost', '[::1]:8000' → '::1'); '' if
    it is not one."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, port = value[1:].partition("]")
        return name if port == "" or (port[:1] == ":" and port[1:].isdigit()) else ""
    name, colon, port = value.partition(":")
    return name if not colon or port.isdigit() else ""


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> set[str]:
    """The Host names answered: loopback, the address listened on (unless it is every interface) and `extra`."""
    names = {*LOOPBACK, *(() if host in ANY_ADDRESS else (host_name(host) or host.lower(),))}
    for name in extra:
        if not host_name(name):
            raise TallerError(
                f"--allow-host «{name[:QUOTED]}» no es un nombre de equipo; usa uno como mipc.local o 192.168.1.20."
            )
        names.add(host_name(name))
    return names


class HostCheck:
    """ASGI wrapper: answers only requests whose Host header is one of `allowed`. A page from elsewhere that reaches
    127.0.0.1 through DNS rebinding still says its own name in Host, and gets a 400."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]):
        self.app, self.allowed = app, set(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            asked = header(scope, b"host") or ""
            if host_name(asked) not in self.allowed:
                shown = asked[:QUOTED] or "ninguno"
                return await refusal(
                    400,
                    f"este servidor sólo responde a localhost y 127.0.0.1, no al nombre "
                    f"«{shown}» (así ninguna otra web puede leerlo); si lo abres con ese "
                    f"nombre a propósito, arráncalo con `taller serve --allow-host NOMBRE`.",
                )(scope, receive, send)
        await self.app(scope, receive, send)


async def read_body(receive: Receive, limit: int) -> list[Message] | None:
    """The request's body messages, counted as they arrive; None as soon as they pass `limit` bytes (the rest is
    never read here: the server drops it)."""
    messages, size = [], 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":  # the client went away
            return messages
        size += len(message.get("body", b""))
        if size > limit:
            return None
        if not message.get("more_body", False):
            return messages


def declared_size(value: str | None) -> float:
    """The size a Content-Length header announces: 0 without one, infinite if it is not a number."""
    digits = (value or "0").strip().lstrip("0") or "0"
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 15 else math.inf


class BodyLimit:
    """ASGI wrapper: a request body, with Content-Length or chunked, is read as it arrives and refused with 413 as soon
    as it passes `limit` bytes, so at most `limit` bytes (and one piece) are ever held."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = declared_size(header(scope, b"content-length"))
        messages = await read_body(receive, self.limit) if declared <= self.limit else None
        if messages is None:
            return await refusal(
                413, f"la petición es demasiado grande (máximo {self.limit // 1024} KiB); envía un texto más corto."
            )(scope, receive, send)

        async def replay() -> Message:  # the body read above, then the connection itself (a disconnect)
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)
