"""Forwarding one request to an upstream and its response back, as bytes, chunk by chunk.

The proxied routes are raw ASGI handlers (see routes.py): the gateway reads the client's headers
and body straight from the ASGI scope and relays the upstream's status line, headers and body
chunks straight back, with no request or response objects in between. Nothing is re-serialised:
a JSON body is read and checked once to learn its `model` (bodies.py) and sent on as the same
bytes; other bodies (multipart uploads) stream through, their `model` field read on the way for a
key with an allow-list; SSE chunks and audio reach the client as the upstream produces
them. Hop-by-hop headers are dropped both ways (RFC 9110 §7.6.1); the client's Authorization is
not forwarded (the upstreams are internal).

Around the relay, `Gateway.forward` does the bookkeeping: the API key, per-key limits (admitted
before the upstream is called, released when the body ends or the client leaves), metrics, and
completion tokens read from the upstream's `usage` (a JSON body's, or an SSE stream's usage chunk)
without changing a byte. When traces are recorded, OpenTelemetry's aiohttp instrumentation on the
upstream sessions adds a CLIENT span and W3C traceparent to each upstream call (app.create_app).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import msgspec
from litestar.types import Receive, Scope, Send
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from multidict import CIMultiDict
from yarl import URL

from gateway.auth import OPEN, ApiKey, authenticate, check_model
from gateway.bodies import JSON, MULTIPART, FormScan, json_model, media_type, unsupported
from gateway.metrics import GatewayMetrics
from gateway.upstreams import Pool, Server, Upstream, why
from core.limits import Limiter, RateLimited
from core.sse import data_fields
from core.web import OpenAIError, rate_limit_error

log = logging.getLogger(__name__)

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
_DROP_FROM_REQUEST = HOP_BY_HOP | {"host", "authorization", "expect"}
# date and server are set by our own server.
_DROP_FROM_RESPONSE = frozenset(name.encode() for name in HOP_BY_HOP | {"date", "server"})
_MAX_JSON_SCAN = 1 << 20
"""Non-streamed bodies up to this size are scanned for `usage`; larger ones are relayed uncounted."""
_BROKE_OFF = (aiohttp.ClientError, asyncio.TimeoutError)
"""What an upstream exchange can fail with: a refused or dropped connection, payload errors, a timeout."""


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
        incoming.forward.extend((k, v) for k, v in pairs if k not in drop)
        return incoming

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)


def response_headers(raw: tuple[tuple[bytes, bytes], ...]) -> list[tuple[bytes, bytes]]:
    """The upstream's headers (raw pairs) that go back to the client; content-length is kept (bodies are relayed raw)."""
    drop = _DROP_FROM_RESPONSE
    for name, value in raw:
        if name.lower() == b"connection":
            drop = drop | {n.encode() for n in _listed(value.decode("latin-1"))}
    return [(name.lower(), value) for name, value in raw if name.lower() not in drop]


def _target(scope: Scope) -> str:
    # raw_path keeps the client's percent-encoding (model ids may hold "/" as %2F).
    path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    return (path + (b"?" + query if query else b"")).decode("latin-1")


class _Usage(msgspec.Struct):
    usage: dict[str, Any] | None = None


# A typed decoder reads one field and skips the rest without building it.
_read_usage = msgspec.json.Decoder(_Usage).decode


def _too_large(limit: int) -> OpenAIError:
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
        self, receive: Receive, limit: int, form: FormScan | None = None, check: Callable[[FormScan], None] | None = None
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
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                self.error = _too_large(self.limit)
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


class UsageScanner:
    """Finds OpenAI `usage` in a response body as it passes, without holding the stream up.

    SSE: each complete event that mentions "usage" is parsed and a non-null usage kept (vLLM sends it
    in the last chunk when the client asked for `stream_options.include_usage`). JSON: the body is
    kept (up to _MAX_JSON_SCAN bytes) and parsed at the end.
    """

    def __init__(self, sse: bool) -> None:
        self.sse = sse
        self.buf = bytearray()
        self.usage: dict | None = None
        self.overflow = False

    def feed(self, chunk: bytes) -> None:
        if self.overflow:
            return
        if self.sse and not self.buf and chunk.endswith(b"\n\n") and b'"usage"' not in chunk:
            return  # the usual SSE chunk: whole events, none with usage (the fast path)
        self.buf += chunk
        if not self.sse:
            self.overflow = len(self.buf) > _MAX_JSON_SCAN
            return
        while (end := self.buf.find(b"\n\n")) >= 0:
            event = bytes(self.buf[:end])
            del self.buf[: end + 2]
            if b'"usage"' in event:
                self._event(event)

    def _event(self, event: bytes) -> None:
        for data in data_fields(event.splitlines()):
            self._take(data)

    def _take(self, data: bytes | bytearray) -> None:
        try:
            usage = _read_usage(data).usage
        except msgspec.MsgspecError:
            return
        if usage is not None:
            self.usage = usage

    def finish(self) -> dict | None:
        """The last usage seen (call once the body has ended)."""
        if not self.overflow and self.buf:
            if self.sse:
                self._event(bytes(self.buf))
            elif b'"usage"' in self.buf:
                self._take(self.buf)
        self.buf.clear()
        return self.usage


BodyKind = Literal["json", "multipart"]
"""What a proxied route's POST body must be (see `Gateway.forward`)."""

_USAGE_ROUTES = frozenset({"/v1/chat/completions", "/v1/completions"})
"""Routes whose answers carry OpenAI `usage` (scanned for token counts)."""


@dataclass(eq=False)
class _Exchange:
    """One proxied request's state, for the bookkeeping at its end."""

    key: ApiKey
    model: str | None
    route: str
    start: float
    """time.perf_counter() when the request arrived."""
    server: Server | None = None
    response: aiohttp.ClientResponse | None = None
    scanner: UsageScanner | None = None
    complete: bool = False
    """The whole body reached the client (the connection can be reused)."""
    broken: bool = False
    """The upstream broke off mid-body."""
    gone: bool = False
    """The client disconnected first."""

    @property
    def ok(self) -> bool:
        return self.response is not None and self.response.status < 400

    @property
    def model_label(self) -> str:
        """The request's model once the upstream accepted it, else "-" (no made-up label values)."""
        return (self.model or "-") if self.ok else "-"


class DisconnectWatch:
    """Cancels the task that made it when the client disconnects (ASGI http.disconnect), until disarmed.

    One small task waits on `receive`; the watched code catches CancelledError, checks `gone` and
    calls `uncancel()`. Only make one once the request body has been read: it consumes `receive`.
    """

    def __init__(self, receive: Receive) -> None:
        self.gone = False
        self._task = asyncio.current_task()
        self._waiter = asyncio.ensure_future(_disconnected(receive))
        self._waiter.add_done_callback(self._fire)

    def _fire(self, waiter: asyncio.Future) -> None:
        if not waiter.cancelled() and self._task is not None:
            self.gone = True
            self._task.cancel()

    def disarm(self) -> None:
        """Stop watching (idempotent)."""
        self._waiter.remove_done_callback(self._fire)
        self._waiter.cancel()


@dataclass(eq=False)
class Gateway:
    """What every proxied request needs: keys, upstream pools, limits and metrics.

    Lives in `app.state.gateway` for the app's lifetime (see app.create_app).
    """

    keys: tuple[ApiKey, ...]
    """Accepted keys; empty = an open gateway (every request runs as OPEN)."""
    pools: dict[Upstream, Pool]
    limiter: Limiter
    metrics: GatewayMetrics
    max_body_bytes: int
    max_json_bytes: int = 8 * 1024 * 1024
    """Largest JSON body (it is parsed whole); see GatewaySettings."""
    max_json_depth: int = 64

    def caller(self, scope: Scope) -> tuple[Incoming, ApiKey]:
        """The request's headers and the caller's ApiKey (OPEN for an open gateway).

        Raises OpenAIError 401 (invalid_api_key), or 400 for a bad Content-Length.
        """
        incoming = Incoming.parse(scope["headers"])
        return incoming, authenticate(incoming.authorization, self.keys) if self.keys else OPEN

    async def forward(
        self, scope: Scope, receive: Receive, send: Send, upstream: Upstream, route: str, *,
        body: BodyKind | None = None, caller: tuple[Incoming, ApiKey] | None = None,
    ) -> None:
        """Send the request to a server of `upstream` (same method, path, query, body) and relay its answer.

        `route` labels the metrics (the route template, so made-up paths cannot grow the label set).
        `body`: what a POST must carry: "json" (OpenAI JSON; any other media type → 415, a body that is
        not a bounded JSON object → 400, see bodies.json_model) or "multipart" (form uploads; other
        media types → 415). Either way its `model` must be one the key may use (auth.check_model:
        400 missing_model, 403 model_not_allowed). POSTs count against the key's limits (429, type
        rate_limit_error, with Retry-After).
        Raises, before anything is sent, OpenAIError 401 for a bad key, 413 for a body over
        max_body_bytes, 502 (code upstream_unavailable) when no server can be reached or one breaks
        the exchange before answering, 504 (code upstream_timeout) when it does not answer in time.
        A server that refuses the connection is marked down and the next one tried. An upstream that
        breaks off mid-body breaks the client's connection too (the status line is already sent).
        `caller`: what `caller(scope)` gave, for a route that needed the key before forwarding.
        """
        start = time.perf_counter()
        incoming, key = caller or self.caller(scope)
        method: str = scope["method"]
        if incoming.content_length is not None and incoming.content_length > self.max_body_bytes:
            raise _too_large(self.max_body_bytes)
        try:
            model, content = await self._read(receive, incoming, key, body if method == "POST" else None)
            admitted = method == "POST"
            if admitted:
                try:
                    await self.limiter.admit(key.id)
                except RateLimited as e:
                    raise rate_limit_error(e) from None
        except OpenAIError as e:  # refused before the upstream was asked (429 included)
            self.metrics.error(key.id, "-", route, e.status_code, e.code)
            raise
        # With the body read, a client that leaves from here on cancels the upstream request, even
        # before it answers (a long non-streamed generation). An upload streams on: watched later.
        watch = DisconnectWatch(receive) if not isinstance(content, BodyStream) else None
        exchange = _Exchange(key, model, route, start)
        try:
            server, response = await self.send_upstream(scope, upstream, incoming.forward, content)
            exchange.server, exchange.response = server, response
            if watch is None and isinstance(content, BodyStream) and content.done:
                watch = DisconnectWatch(receive)
            await self._relay(send, exchange, watch)
        except OpenAIError as e:
            self.metrics.error(key.id, "-", route, e.status_code, e.code)
            raise
        except asyncio.CancelledError:
            if watch is None or not watch.gone:
                raise
            # Our own cancel, from the watch: the request is over, not the server.
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            exchange.gone = True
        finally:
            if watch is not None:
                watch.disarm()
            await self._finish(exchange, admitted)

    async def _read(
        self, receive: Receive, incoming: Incoming, key: ApiKey, body: BodyKind | None
    ) -> tuple[str | None, bytes | BodyStream | None]:
        """The request's model (JSON bodies) and its content for the upstream: bytes, a stream or None.

        Raises OpenAIError 400/403/413/415 as `forward` describes.
        """
        kind, options = media_type(incoming.content_type)
        if body == "json":
            if kind != JSON:
                if not incoming.has_body and not incoming.content_type:
                    json_model(b"", max_depth=self.max_json_depth)  # raises: an empty body
                raise unsupported(incoming.content_type, JSON)
            limit = min(self.max_body_bytes, self.max_json_bytes)
            if incoming.content_length is not None and incoming.content_length > limit:
                raise _too_large(limit)
            content = await read_body(receive, limit)
            model = json_model(content, max_depth=self.max_json_depth)
            check_model(key, model)
            return model, content
        if body == "multipart":
            if kind != MULTIPART:
                raise unsupported(incoming.content_type, MULTIPART)
            if key.models is None:  # nothing to check: the upload streams through untouched
                return None, BodyStream(receive, self.max_body_bytes)
            form = FormScan(options.get("boundary", ""))
            return None, BodyStream(receive, self.max_body_bytes, form, lambda f: _check_form(key, f))
        return None, BodyStream(receive, self.max_body_bytes) if incoming.has_body else None

    async def _relay(self, send: Send, exchange: _Exchange, watch: DisconnectWatch | None) -> None:
        """Relay the upstream's status, headers and body to the client as they arrive.

        An upstream that breaks off mid-body leaves the response unfinished (`exchange.broken`):
        the ASGI server then closes the client's connection, so the client sees a truncated body,
        not a clean end (the status line is already sent; nothing more honest is left to say).
        `watch` stops caring about a disconnect once the last byte is on its way.
        """
        response = exchange.response
        assert response is not None
        if exchange.ok and "Content-Encoding" not in response.headers and exchange.route in _USAGE_ROUTES:
            exchange.scanner = UsageScanner(sse=response.headers.get("Content-Type", "").startswith("text/event-stream"))
        scanner = exchange.scanner
        await send({"type": "http.response.start", "status": response.status, "headers": response_headers(response.raw_headers)})
        first = True
        try:
            async for chunk in response.content.iter_any():
                if first:
                    first = False
                    if scanner is not None and scanner.sse:
                        self.metrics.ttft.labels(exchange.key.id, exchange.model_label).observe(time.perf_counter() - exchange.start)
                if scanner is not None:
                    scanner.feed(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except _BROKE_OFF as e:
            log.warning("upstream %s broke off mid-response: %s", response.url, why(e))
            exchange.broken = True
            span = trace.get_current_span()
            if span.is_recording():
                span.set_status(StatusCode.ERROR, "upstream broke off mid-response")
            return
        if watch is not None:
            watch.disarm()
        exchange.complete = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _finish(self, exchange: _Exchange, admitted: bool) -> None:
        """Free the upstream connection and the key's slot; count the request, its latency and tokens."""
        key, route, response = exchange.key, exchange.route, exchange.response
        try:
            if response is None:  # refused or failed before an upstream answered: counted where it was raised
                if exchange.gone:
                    self.metrics.error(key.id, "-", route, 499, "client_closed_request")  # nginx's code for it
                return
            assert exchange.server is not None
            exchange.server.inflight -= 1
            if exchange.complete:
                response.release()  # the connection goes back to the pool
            else:
                response.close()  # drops the connection, which tells the upstream to stop generating
            model, status = exchange.model_label, response.status
            self.metrics.requests.labels(key.id, model, route, str(status)).inc()
            self.metrics.latency.labels(key.id, model, route).observe(time.perf_counter() - exchange.start)
            if status >= 400 or exchange.broken:
                self.metrics.errors.labels(key.id, model, route, "upstream_broke_off" if exchange.broken else str(status)).inc()
            usage = exchange.scanner.finish() if exchange.scanner is not None else None
            if usage:
                await self._count_usage(key, model, usage)
        finally:
            if admitted:
                await self.limiter.release(key.id)

    async def _count_usage(self, key: ApiKey, model_label: str, usage: dict) -> None:
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int):
            self.metrics.tokens.labels(key.id, model_label, "prompt").inc(prompt)
        if isinstance(completion, int):
            self.metrics.tokens.labels(key.id, model_label, "completion").inc(completion)
            await self.limiter.add_tokens(key.id, completion)

    async def send_upstream(
        self, scope: Scope, upstream: Upstream, headers: CIMultiDict[str], content: bytes | BodyStream | None
    ) -> tuple[Server, aiohttp.ClientResponse]:
        """The first server of the pool that answers (status line and headers), least busy first.

        The chosen server's `inflight` is raised by one for the response returned; the caller lowers
        it when done. Whatever else happens here (a failed server, the client's body failing, the
        task cancelled because the client left) lowers it again before leaving.
        Raises OpenAIError 502/504 (see `forward`), or the BodyStream's own error when the
        client's body was what failed.
        """
        pool = self.pools[upstream]
        method: str = scope["method"]
        target = _target(scope)
        replayable = not isinstance(content, BodyStream)
        tried: list[Server] = []
        while True:
            server = pool.pick(tried)
            assert server is not None  # pools are never empty, and we stop before running out
            tried.append(server)
            server.inflight += 1
            try:
                # A CLIENT span and traceparent come from the session's OpenTelemetry hooks, when traced.
                return server, await server.session.request(method, URL(server.url + target, encoded=True), headers=headers, data=content)
            except BaseException as e:  # CancelledError included: a client that leaves must not leak a count
                server.inflight -= 1
                if not isinstance(e, Exception):  # cancelled (the client left, or shutdown): stays so
                    raise
                if isinstance(content, BodyStream) and content.error is not None:
                    raise content.error from e
                if not isinstance(e, _BROKE_OFF):
                    raise
                if isinstance(e, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
                    # The request never reached this server: take it out and try the next one.
                    pool.mark(server, False, why(e))
                    if replayable and pool.pick(tried) is not None:
                        continue
                if isinstance(e, asyncio.TimeoutError):  # aiohttp's connect and read timeouts are ones
                    raise _timeout(pool, server, e) from e
                raise _unreachable(pool, server, e) from e

    async def allowed_models(self, scope: Scope, send: Send, key: ApiKey) -> None:
        """Answer GET /v1/models from the LLM upstream's list, keeping only the models `key` may use.

        Raises OpenAIError 502/504 as `forward` does, or with the upstream's status when it refuses.
        """
        server, response = await self.send_upstream(scope, "llm", CIMultiDict(), None)
        try:
            body = await response.read()
        except _BROKE_OFF as e:
            raise _unreachable(self.pools["llm"], server, e) from e
        finally:
            server.inflight -= 1
            response.release()
        if response.status != 200:
            raise OpenAIError(response.status, f"The llm upstream answered {response.status} listing models.")
        listing = json.loads(body)
        listing["data"] = [m for m in listing.get("data", []) if key.allows(m.get("id"))]
        await send_json(send, listing)


def _check_form(key: ApiKey, form: FormScan) -> None:
    # Every `model` field counts: a form may repeat one, and which the upstream reads is its business.
    for model in form.models or [None]:
        check_model(key, model)


async def _disconnected(receive: Receive) -> None:
    """Return once the client has gone (ASGI http.disconnect); an unread empty body message is skipped."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def send_json(send: Send, payload: object, status: int = 200) -> None:
    """Send `payload` as a whole application/json response over ASGI `send`."""
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _timeout(pool: Pool, server: Server, e: Exception) -> OpenAIError:
    log.warning("%s upstream timed out at %s: %s", pool.name, server.url, why(e))
    return OpenAIError(504, f"The {pool.name} upstream did not answer in time.", code="upstream_timeout")


def _unreachable(pool: Pool, server: Server, e: Exception) -> OpenAIError:
    log.warning("%s upstream unreachable at %s: %s", pool.name, server.url, why(e))
    return OpenAIError(
        502, f"The {pool.name} upstream is unreachable ({type(e).__name__}).", code="upstream_unavailable"
    )
