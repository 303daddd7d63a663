"""Forwarding one request to an upstream and its response back, as bytes, chunk by chunk.

Nothing is re-serialised: the request body goes to the upstream with its content-type (JSON bodies
are read once to learn the `model`, then sent as the same bytes; multipart uploads stream through),
and the upstream's status, content-type and body stream back (SSE chunks and audio reach the client
as the upstream produces them). Hop-by-hop headers are dropped both ways; the client's
Authorization is not forwarded (the upstreams are internal).

Around the relay, an `Exchange` does the bookkeeping: per-key limits (admitted before the upstream
is called, released when the body ends or the client leaves), metrics, and completion tokens read
from the upstream's `usage` (a JSON body's, or an SSE stream's usage chunk) without changing a byte.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
from litestar import Request
from litestar.background_tasks import BackgroundTask
from litestar.response import Stream
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode

from gateway.auth import OPEN, ApiKey, model_forbidden
from gateway.limits import Limiter, RateLimited
from gateway.metrics import GatewayMetrics
from gateway.upstreams import Pool, Server, Upstream
from june.web import OpenAIError

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
# client's 100-continue was answered by our server already.
_DROP_FROM_REQUEST = HOP_BY_HOP | {"host", "authorization", "expect"}
# date and server are set by our own server.
_DROP_FROM_RESPONSE = HOP_BY_HOP | {"date", "server"}
_MAX_JSON_SCAN = 1 << 20
"""Non-streamed bodies up to this size are scanned for `usage`; larger ones are relayed uncounted."""


def _connection_listed(headers: list[tuple[str, str]]) -> set[str]:
    """Header names a `Connection` header declares hop-by-hop as well."""
    return {
        name.strip().lower()
        for key, value in headers
        if key.lower() == "connection"
        for name in value.split(",")
        if name.strip()
    }


def request_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """The client's headers (ASGI scope pairs) that go on to an upstream, in order."""
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]
    drop = _DROP_FROM_REQUEST | _connection_listed(headers)
    return [(k, v) for k, v in headers if k.lower() not in drop]


def response_headers(headers: httpx.Headers) -> dict[str, str]:
    """The upstream's headers that go back to the client (content-length kept: bodies are relayed raw)."""
    pairs = headers.multi_items()
    drop = _DROP_FROM_RESPONSE | _connection_listed(pairs)
    return {k: v for k, v in pairs if k.lower() not in drop}


def _has_body(request: Request) -> bool:
    headers = request.headers
    return "content-length" in headers or "transfer-encoding" in headers


def _target(request: Request) -> str:
    # raw_path keeps the client's percent-encoding (model ids may hold "/" as %2F).
    path = request.scope.get("raw_path") or request.scope["path"].encode()
    query = request.scope.get("query_string", b"")
    return (path + (b"?" + query if query else b"")).decode("latin-1")


def sniff_model(body: bytes) -> str | None:
    """The top-level "model" of a JSON object body, else None (bad JSON is the upstream's to reject)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    model = payload.get("model") if isinstance(payload, dict) else None
    return model if isinstance(model, str) else None


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
        for line in event.splitlines():
            if line.startswith(b"data:"):
                self._take(line[5:])

    def _take(self, data: bytes | bytearray) -> None:
        try:
            payload = json.loads(data)
        except ValueError:
            return
        if isinstance(payload, dict) and isinstance(payload.get("usage"), dict):
            self.usage = payload["usage"]

    def finish(self) -> dict | None:
        """The last usage seen (call once the body has ended)."""
        if not self.overflow and self.buf:
            if self.sse:
                self._event(bytes(self.buf))
            elif b'"usage"' in self.buf:
                self._take(self.buf)
        self.buf.clear()
        return self.usage


@dataclass(eq=False)
class Exchange:
    """One proxied request's bookkeeping, finished exactly once (end of body, break-off or client gone)."""

    metrics: GatewayMetrics
    limiter: Limiter
    key: ApiKey
    model: str | None
    route: str
    start: float
    admitted: bool = False
    """Whether the limiter admitted it (its slot must be released)."""
    server: Server | None = None
    response: httpx.Response | None = None
    scanner: UsageScanner | None = None
    broken: bool = False
    _task: asyncio.Task | None = field(default=None, repr=False)

    @property
    def model_label(self) -> str:
        ok = self.response is not None and self.response.status_code < 400
        return (self.model or "-") if ok else "-"

    async def relay(self) -> AsyncIterator[bytes]:
        """The upstream body as it arrives (raw: still content-encoded, so content-length holds)."""
        assert self.response is not None
        sse = self.scanner is not None and self.scanner.sse
        first = True
        try:
            async for chunk in self.response.aiter_raw():
                if first and chunk:
                    first = False
                    if sse:
                        self.metrics.ttft.labels(self.key.id, self.model_label).observe(time.perf_counter() - self.start)
                if self.scanner is not None:
                    self.scanner.feed(chunk)
                yield chunk
            self._done_with_server()  # now, not after the background task: routing sees it at once
        except httpx.TransportError as e:
            # The status line is already sent: the only honest signal left is to break the connection
            # (re-raising does), so the client sees a truncated body rather than a clean end.
            self.broken = True
            log.warning("upstream %s broke off mid-response: %r", self.server.url if self.server else "?", e)
            raise
        finally:
            # On a client disconnect this generator is cancelled: the bookkeeping runs in its own task.
            self.finish_soon()

    def finish_soon(self) -> asyncio.Task:
        """Start finishing (once) in a task of its own, safe from the caller's cancellation."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._finish())
        return self._task

    async def finish(self) -> None:
        """Finish (once) and wait for it; Litestar runs this after the body or a disconnect."""
        await asyncio.shield(self.finish_soon())

    def _done_with_server(self) -> None:
        if self.server is not None:
            self.server.inflight -= 1
            self.server = None

    async def _finish(self) -> None:
        response = self.response
        self._done_with_server()
        try:
            if response is not None:
                await response.aclose()  # frees the connection, which tells the upstream to stop generating
                status = response.status_code
                model = self.model_label
                self.metrics.requests.labels(self.key.id, model, self.route, str(status)).inc()
                self.metrics.latency.labels(self.key.id, model, self.route).observe(time.perf_counter() - self.start)
                if status >= 400 or self.broken:
                    self.metrics.errors.labels(self.key.id, model, self.route, "upstream_broke_off" if self.broken else str(status)).inc()
                usage = self.scanner.finish() if self.scanner is not None else None
                if usage:
                    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
                    if isinstance(prompt, int):
                        self.metrics.tokens.labels(self.key.id, model, "prompt").inc(prompt)
                    if isinstance(completion, int):
                        self.metrics.tokens.labels(self.key.id, model, "completion").inc(completion)
                        await self.limiter.add_tokens(self.key.id, completion)
        finally:
            if self.admitted:
                await self.limiter.release(self.key.id)


async def forward(request: Request, upstream: Upstream, *, allow_list: bool = False) -> Stream:
    """Send `request` to a server of `upstream` (same method, path, query, body) and stream its answer back.

    `allow_list`: refuse a JSON body's model outside the key's allow-list (403, code model_not_allowed).
    POSTs count against the key's limits (429, type rate_limit_error, with Retry-After).
    Raises OpenAIError 502 (code upstream_unavailable) when no server can be reached or one breaks
    the exchange before answering, 504 (code upstream_timeout) when it does not answer in time.
    A server that refuses the connection is marked down and the next one tried.
    """
    start = time.perf_counter()
    state = request.app.state
    key: ApiKey = getattr(request.state, "api_key", OPEN)
    content: bytes | AsyncIterator[bytes] | None
    model = None
    if request.method == "POST" and request.headers.get("content-type", "").startswith("application/json"):
        content = await request.body()
        model = sniff_model(content)
    else:
        content = request.stream() if _has_body(request) else None
    exchange = Exchange(state.metrics, state.limiter, key, model, request.scope["path"], start)
    if allow_list and model is not None and not key.allows(model):
        exchange.metrics.error(key.id, "-", exchange.route, 403, "model_not_allowed")
        raise model_forbidden(key, model)
    if request.method == "POST":
        try:
            await exchange.limiter.admit(key.id)
        except RateLimited:
            exchange.metrics.error(key.id, "-", exchange.route, 429, "rate_limit_exceeded")
            raise
        exchange.admitted = True
    try:
        exchange.server, exchange.response = await _send(request, state.pools[upstream], content)
    except OpenAIError as e:
        exchange.metrics.error(key.id, "-", exchange.route, e.status_code, e.code)
        await exchange.finish()
        raise
    response = exchange.response
    content_type = response.headers.get("content-type", "application/octet-stream")
    if "content-encoding" not in response.headers and request.method == "POST":
        exchange.scanner = UsageScanner(sse=content_type.startswith("text/event-stream"))
    return Stream(
        exchange.relay(),
        status_code=response.status_code,
        # The upstream's content-type travels verbatim in `headers` (Litestar keeps a given one and
        # would otherwise add "; charset=utf-8" to text/*); media_type only fills in when it has none.
        media_type=content_type,
        headers=response_headers(response.headers),
        # Runs after the last chunk or a client disconnect: frees the upstream connection (which
        # tells the upstream to stop generating), the key's concurrency slot, and counts tokens.
        background=BackgroundTask(exchange.finish),
    )


async def _traced_send(tracer: trace.Tracer, server: Server, outgoing: httpx.Request) -> httpx.Response:
    """`server.client.send(outgoing, stream=True)` in a CLIENT span, with W3C `traceparent` injected.

    The span covers the wait for the status line and headers, as OpenTelemetry's httpx
    instrumentation does, with its attributes (http.method, http.url, http.status_code), at a
    fraction of its cost per request. Exceptions are recorded on the span and re-raised.
    """
    with tracer.start_as_current_span(outgoing.method, kind=SpanKind.CLIENT) as span:
        propagate.inject(outgoing.headers)  # replaces a client's traceparent: this span is the parent now
        if not span.is_recording():
            return await server.client.send(outgoing, stream=True)
        span.set_attribute("http.method", outgoing.method)
        span.set_attribute("http.url", str(outgoing.url))
        response = await server.client.send(outgoing, stream=True)
        span.set_attribute("http.status_code", response.status_code)
        if response.status_code >= 500:
            span.set_status(StatusCode.ERROR)
        return response


async def _send(
    request: Request, pool: Pool, content: bytes | AsyncIterator[bytes] | None
) -> tuple[Server, httpx.Response]:
    """The first server of `pool` that answers (status line and headers), least busy first.

    Each attempt is traced (see `_traced_send`) by the app's `state.tracer`.
    """
    tracer: trace.Tracer = request.app.state.tracer
    headers = request_headers(request.scope["headers"])
    target = _target(request)
    replayable = not isinstance(content, AsyncIterator)
    tried: list[Server] = []
    while True:
        server = pool.pick(tried)
        assert server is not None  # pools are never empty, and we stop before running out
        tried.append(server)
        outgoing = server.client.build_request(request.method, target, headers=headers, content=content)
        server.inflight += 1
        try:
            return server, await _traced_send(tracer, server, outgoing)
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            server.inflight -= 1
            # The request never reached this server: take it out and try the next one.
            pool.mark(server, False, repr(e))
            if replayable and pool.pick(tried) is not None:
                continue
            if isinstance(e, httpx.ConnectTimeout):
                raise _timeout(pool, server, e) from e
            raise _unreachable(pool, server, e) from e
        except httpx.TimeoutException as e:
            server.inflight -= 1
            raise _timeout(pool, server, e) from e
        except httpx.TransportError as e:
            server.inflight -= 1
            raise _unreachable(pool, server, e) from e


def _timeout(pool: Pool, server: Server, e: Exception) -> OpenAIError:
    log.warning("%s upstream timed out at %s: %r", pool.name, server.url, e)
    return OpenAIError(504, f"The {pool.name} upstream did not answer in time.", code="upstream_timeout")


def _unreachable(pool: Pool, server: Server, e: Exception) -> OpenAIError:
    log.warning("%s upstream unreachable at %s: %r", pool.name, server.url, e)
    return OpenAIError(
        502, f"The {pool.name} upstream is unreachable ({type(e).__name__}).", code="upstream_unavailable"
    )


async def allowed_models(request: Request, key: ApiKey) -> dict:
    """GET /v1/models from the LLM upstream, keeping only the models `key` may use (OpenAI's list shape).

    Raises OpenAIError 502/504 as `forward` does, or with the upstream's status when it refuses.
    """
    pool: Pool = request.app.state.pools["llm"]
    server, response = await _send(request, pool, None)
    try:
        await response.aread()
    finally:
        server.inflight -= 1
        await response.aclose()
    if response.status_code != 200:
        raise OpenAIError(response.status_code, f"The llm upstream answered {response.status_code} listing models.")
    listing = response.json()
    listing["data"] = [m for m in listing.get("data", []) if key.allows(m.get("id"))]
    return listing
