"""Forwarding one request to an upstream and its response back, as bytes, chunk by chunk.

The proxied routes are raw ASGI handlers (see routes.py): the gateway reads the client's headers
and body straight from the ASGI scope and relays the upstream's status line, headers and body
chunks straight back, with no request or response objects in between. Nothing is re-serialised:
a JSON body is read and checked once to learn its `model` (bodies.py) and sent on as the same
bytes; other bodies (multipart uploads) stream through, their `model` field read on the way for a
key with an allow-list; SSE chunks and audio reach the client as the upstream produces them.

This module is the policy; the rooms around it: asgi.py (headers, bodies, JSON answers on raw
ASGI), usage.py (the usage scan), upstreams.py (picking a server, failing over to the next),
core.disconnect (cancelling the exchange when the client leaves).

Around the relay, `Gateway.forward` does the bookkeeping: the API key, per-key limits (admitted
before the upstream is called, released when the body ends or the client leaves), metrics, and
completion tokens read from the upstream's `usage` (a JSON body's, or an SSE stream's usage chunk)
without changing a byte. When traces are recorded, OpenTelemetry's aiohttp instrumentation on the
upstream sessions adds a CLIENT span and W3C traceparent to each upstream call (app.create_app).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
from litestar.types import Receive, Scope, Send
from multidict import CIMultiDict
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from core.disconnect import DisconnectWatch
from core.limits import Limiter, RateLimited
from core.priority import HEADER, VLLM_PRIORITY, RequestClass
from core.web import OpenAIError, rate_limit_error
from gateway.admission import Admission
from gateway.asgi import (
    BodyStream,
    Incoming,
    http_scope,
    read_body,
    request_target,
    response_headers,
    send_json,
    too_large,
)
from gateway.auth import OPEN, ApiKey, authenticate, check_model
from gateway.bodies import JSON, MULTIPART, FormScan, JsonFields, json_fields, media_type, unsupported
from gateway.classes import LiveProof, resolve_class
from gateway.metrics import GatewayMetrics
from gateway.upstreams import BROKE_OFF, Pool, Server, Upstream, why
from gateway.usage import UsageScanner

log = logging.getLogger(__name__)


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
    admission: Admission | None = None
    """Admission by request class (`gateway.admission`); None: every request goes at once."""
    live_proof: LiveProof = field(default_factory=LiveProof)
    """The secret this gateway's realtime sessions prove their live calls with (`gateway.classes`)."""
    llm_priority: bool = False
    """Send each chat/completions request's class to the LLM as vLLM's `priority` field (vLLM must run
    `--scheduling-policy priority`, or it refuses any priority but 0)."""

    def caller(self, scope: Scope) -> tuple[Incoming, ApiKey]:
        """The request's headers and the caller's ApiKey (OPEN for an open gateway).

        Raises OpenAIError 401 (invalid_api_key), or 400 for a bad Content-Length.
        """
        incoming = Incoming.parse(list(scope["headers"]))
        return incoming, authenticate(incoming.authorization, self.keys) if self.keys else OPEN

    async def forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        upstream: Upstream,
        route: str,
        *,
        body: BodyKind | None = None,
        caller: tuple[Incoming, ApiKey] | None = None,
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
        method: str = http_scope(scope)["method"]
        if incoming.content_length is not None and incoming.content_length > self.max_body_bytes:
            raise too_large(self.max_body_bytes)
        try:
            fields, content = await self._read(receive, incoming, key, body if method == "POST" else None)
            live = self.live_proof.holds(incoming.live_proof)
            request_class = resolve_class(incoming.request_class, fields.service_tier, key, live=live)
            admitted = method == "POST"
            if admitted:
                try:
                    await self.limiter.admit(key.id)
                except RateLimited as e:
                    raise rate_limit_error(e) from None
        except OpenAIError as e:  # refused before the upstream was asked (429 included)
            self.metrics.error(key.id, "-", route, e.status_code, e.code)
            raise
        trace.get_current_span().set_attribute("june.request_class", request_class)
        incoming.forward[HEADER] = request_class
        if self.llm_priority and route in _USAGE_ROUTES and isinstance(content, bytes):
            content = with_priority(content, VLLM_PRIORITY[request_class])
            incoming.forward["Content-Length"] = str(len(content))
        # With the body read, a client that leaves from here on cancels the upstream request, even
        # before it answers (a long non-streamed generation). An upload streams on: watched once sent.
        watch = DisconnectWatch(receive, armed=not isinstance(content, BodyStream))
        exchange = _Exchange(key, fields.model, route, start)
        try:
            with watch:
                async with self._admission(request_class if admitted else None):
                    server, response = await self.send_upstream(scope, upstream, incoming.forward, content)
                    exchange.server, exchange.response = server, response
                    if isinstance(content, BodyStream) and content.done:
                        watch.arm()
                    await self._relay(send, exchange, watch)
            exchange.gone = watch.gone  # the watch's own cancel: the request is over, not the server
        except OpenAIError as e:
            self.metrics.error(key.id, "-", route, e.status_code, e.code)
            raise
        finally:
            await self._finish(exchange, admitted)

    def _admission(self, request_class: RequestClass | None) -> contextlib.AbstractAsyncContextManager[None]:
        """The admission of a `request_class` request (None, or no `admission`: at once)."""
        if request_class is None or self.admission is None:
            return contextlib.nullcontext()
        return self.admission.admit(request_class)

    async def _read(
        self, receive: Receive, incoming: Incoming, key: ApiKey, body: BodyKind | None
    ) -> tuple[JsonFields, bytes | BodyStream | None]:
        """The request's JSON fields (model, service_tier: JSON bodies) and its content for the
        upstream: bytes, a stream or None.

        Raises OpenAIError 400/403/413/415 as `forward` describes.
        """
        kind, options = media_type(incoming.content_type)
        if body == "json":
            if kind != JSON:
                if not incoming.has_body and not incoming.content_type:
                    json_fields(b"", max_depth=self.max_json_depth)  # raises: an empty body
                raise unsupported(incoming.content_type, JSON)
            limit = min(self.max_body_bytes, self.max_json_bytes)
            if incoming.content_length is not None and incoming.content_length > limit:
                raise too_large(limit)
            content = await read_body(receive, limit)
            fields = json_fields(content, max_depth=self.max_json_depth)
            check_model(key, fields.model)
            return fields, content
        none = JsonFields(None)
        if body == "multipart":
            if kind != MULTIPART:
                raise unsupported(incoming.content_type, MULTIPART)
            if key.models is None:  # nothing to check: the upload streams through untouched
                return none, BodyStream(receive, self.max_body_bytes)
            form = FormScan(options.get("boundary", ""))
            return none, BodyStream(receive, self.max_body_bytes, form, lambda f: _check_form(key, f))
        return none, BodyStream(receive, self.max_body_bytes) if incoming.has_body else None

    async def _relay(self, send: Send, exchange: _Exchange, watch: DisconnectWatch) -> None:
        """Relay the upstream's status, headers and body to the client as they arrive.

        An upstream that breaks off mid-body leaves the response unfinished (`exchange.broken`):
        the ASGI server then closes the client's connection, so the client sees a truncated body,
        not a clean end (the status line is already sent; nothing more honest is left to say).
        `watch` stops caring about a disconnect once the last byte is on its way.
        """
        response = exchange.response
        assert response is not None
        if exchange.ok and "Content-Encoding" not in response.headers and exchange.route in _USAGE_ROUTES:
            sse = response.headers.get("Content-Type", "").startswith("text/event-stream")
            exchange.scanner = UsageScanner(sse=sse)
        scanner = exchange.scanner
        headers = response_headers(response.raw_headers)
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        first = True
        try:
            async for chunk in response.content.iter_any():
                if first:
                    first = False
                    if scanner is not None and scanner.sse:
                        ttft = time.perf_counter() - exchange.start
                        self.metrics.ttft.labels(exchange.key.id, exchange.model_label).observe(ttft)
                if scanner is not None:
                    scanner.feed(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except BROKE_OFF as e:
            log.warning("upstream %s broke off mid-response: %s", response.url, why(e))
            exchange.broken = True
            span = trace.get_current_span()
            if span.is_recording():
                span.set_status(StatusCode.ERROR, "upstream broke off mid-response")
            return
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
                reason = "upstream_broke_off" if exchange.broken else str(status)
                self.metrics.errors.labels(key.id, model, route, reason).inc()
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
        """The request's method and target sent to a server of `upstream` (see `Pool.request`)."""
        return await self.pools[upstream].request(http_scope(scope)["method"], request_target(scope), headers, content)

    async def allowed_models(self, scope: Scope, send: Send, key: ApiKey) -> None:
        """Answer GET /v1/models from the LLM upstream's list, keeping only the models `key` may use.

        Raises OpenAIError 502/504 as `forward` does, or with the upstream's status when it refuses.
        """
        server, response = await self.send_upstream(scope, "llm", CIMultiDict(), None)
        try:
            body = await response.read()
        except BROKE_OFF as e:
            raise self.pools["llm"].unreachable(server, e) from e
        finally:
            server.inflight -= 1
            response.release()
        if response.status != 200:
            raise OpenAIError(response.status, f"The llm upstream answered {response.status} listing models.")
        listing = json.loads(body)
        listing["data"] = [m for m in listing.get("data", []) if key.allows(m.get("id"))]
        await send_json(send, listing)


def with_priority(body: bytes, priority: int) -> bytes:
    """A JSON object `body` (checked by `json_fields`) with `"priority": priority` as its last member,
    so it wins over a `priority` the client sent (JSON parsers keep a repeated name's last value, as
    vLLM's does); every other byte is unchanged."""
    head = body.rstrip()
    assert head.endswith(b"}"), "json_fields accepted only an object"
    inner = head[:-1].rstrip()
    separator = b"" if inner.endswith(b"{") else b","
    return inner + separator + b'"priority":' + str(priority).encode() + b"}"


def _check_form(key: ApiKey, form: FormScan) -> None:
    # Every `model` field counts: a form may repeat one, and which the upstream reads is its business.
    models: list[str | None] = [*form.models] or [None]
    for model in models:
        check_model(key, model)
