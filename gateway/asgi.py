"""A small raw-ASGI toolkit for relaying: request headers, the request body, response headers, JSON answers.

The proxied routes read the client's request straight from the ASGI scope and `receive`, and write
the answer straight to `send` (https://asgi.readthedocs.io/en/latest/specs/www.html), with no
request or response objects in between. Hop-by-hop headers are dropped both ways (RFC 9110 §7.6.1);
the client's Authorization is not forwarded (the upstreams are internal).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from litestar.enums import ScopeType
from litestar.types import HTTPScope, Receive, Scope, Send
from multidict import CIMultiDict

from core.priority import HEADER
from core.web import OpenAIError
from gateway.bodies import FormScan
from gateway.classes import LIVE_PROOF

# RFC 9110 §7.6.1: connection-specific headers, meaningful for one hop only.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# host: the upstream's own; authorization: the gateway's key, not the upstream's; expect: the
# client's 100-continue was answered by our server already. content-length stays: a streamed
# upload goes on with the client's length rather than chunked.
# x-june-class and x-june-live: read here; the gateway sends the class it resolved instead.
_CLASS, _LIVE = HEADER.lower(), LIVE_PROOF.lower()
_DROP_FROM_REQUEST = HOP_BY_HOP | {"host", "authorization", "expect", _CLASS, _LIVE}
# date and server are set by our own server.
_DROP_FROM_RESPONSE = frozenset(name.encode() for name in HOP_BY_HOP | {"date", "server"})


def _listed(value: str) -> set[str]:
    return {name.strip().lower() for name in value.split(",") if name.strip()}


@dataclass(slots=True)
class Incoming:
    """What the gateway needs of a client's request headers (ASGI scope pairs), read in one pass."""

    forward: CIMultiDict[str]
    """The headers that go on to the upstream, in order."""
    authorization: str | None = None
    content_type: str = ""
    content_length: int | None = None
    chunked: bool = False
    request_class: str | None = None
    """The X-June-Class the client asked for (`gateway.classes.resolve_class` judges it)."""
    live_proof: str | None = None
    """The X-June-Live a realtime session's loopback call carries."""

    @classmethod
    def parse(cls, raw: list[tuple[bytes, bytes]]) -> Incoming:
        """Raises OpenAIError 400 for a content-length that is not a number, or two Content-Types
        (the gateway would read the body by one and the upstream by the other)."""
        pairs = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw]
        incoming = cls(CIMultiDict())
        drop = _DROP_FROM_REQUEST
        seen_type = False
        for name, value in pairs:
            if name == "connection":
                drop = drop | _listed(value)  # a Connection header declares more hop-by-hop names
            elif name == "authorization":
                incoming.authorization = value
            elif name == "content-type":
                if seen_type:
                    raise OpenAIError(400, "The request has more than one Content-Type header.")
                incoming.content_type, seen_type = value, True
            elif name == "content-length":
                try:
                    incoming.content_length = int(value)
                except ValueError:
                    raise OpenAIError(400, "Content-Length is not a number.") from None
            elif name == "transfer-encoding":
                incoming.chunked = True
            elif name == _CLASS:
                incoming.request_class = value
            elif name == _LIVE:
                incoming.live_proof = value
        incoming.forward.extend((k, v) for k, v in pairs if k not in drop)
        return incoming

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)


def response_headers(raw: tuple[tuple[bytes, bytes], ...]) -> list[tuple[bytes, bytes]]:
    """The upstream's headers (raw pairs) that go back to the client; content-length is kept (bodies
    are relayed raw)."""
    drop = _DROP_FROM_RESPONSE
    for name, value in raw:
        if name.lower() == b"connection":
            drop = drop | {n.encode() for n in _listed(value.decode("latin-1"))}
    return [(name.lower(), value) for name, value in raw if name.lower() not in drop]


def request_target(scope: Scope) -> str:
    """The request's path and query as the client sent them (raw_path keeps its percent-encoding:
    model ids may hold "/" as %2F)."""
    path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    return (path + (b"?" + query if query else b"")).decode("latin-1")


def too_large(limit: int) -> OpenAIError:
    """413 request_too_large for a body over `limit` bytes."""
    return OpenAIError(413, f"The request body is larger than {limit} bytes.", code="request_too_large")


def _ended_early() -> OpenAIError:
    return OpenAIError(400, "The client went away before the request body ended.", code="incomplete_body")


class BodyStream:
    """The request body from ASGI `receive`, as an async iterator of chunks for the upstream request.

    `done` turns true once the last chunk was read (only then may anyone else call `receive`);
    `error` keeps what stopped it early (413 past `limit`, 400 on a disconnect, or what the form
    check raised), so the caller can report that rather than the upstream error it causes.

    With a `form`, each chunk is fed to it, and the last piece of the body is held back until the
    body has ended and `check(form)` has passed: the upstream cannot complete (and act on) a form
    the check refuses; it sees a body cut short.
    """

    def __init__(
        self,
        receive: Receive,
        limit: int,
        form: FormScan | None = None,
        check: Callable[[FormScan], None] | None = None,
    ) -> None:
        self.receive = receive
        self.limit = limit
        self.form = form
        self.check = check
        self.done = False
        self.error: OpenAIError | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        held = b""
        while not self.done:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.error = _ended_early()
                raise self.error
            chunk: bytes = message.get("body", b"")  # type: ignore[assignment]  # an http.request message's body
            size += len(chunk)
            if size > self.limit:
                self.error = too_large(self.limit)
                raise self.error
            self.done = not message.get("more_body", False)
            if self.form is None:
                if chunk:
                    yield chunk
                continue
            try:
                self.form.feed(chunk)
                if self.done:
                    self.form.finish()
                    if self.check is not None:
                        self.check(self.form)
            except OpenAIError as e:
                self.error = e
                raise
            if chunk:
                if held:
                    yield held
                held = chunk
        if held:
            yield held


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body from ASGI `receive`; raises OpenAIError 413 past `limit` bytes, 400 on a disconnect."""
    chunks = [chunk async for chunk in BodyStream(receive, limit)]
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_json(send: Send, payload: object, status: int = 200) -> None:
    """Send `payload` as a whole application/json response over ASGI `send`."""
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def http_scope(scope: Scope) -> HTTPScope:
    """`scope` as an HTTP scope. Raises TypeError for another kind: the routes that forward serve HTTP only."""
    if scope["type"] != ScopeType.HTTP:
        raise TypeError(f"an HTTP route was given a {scope['type']} scope")
    return scope
