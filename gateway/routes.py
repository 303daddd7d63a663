"""The gateway's routes: OpenAI's paths, each forwarded to the upstream that serves it, plus
/health, /ready, /metrics and vLLM's POST /tokenize.

The /v1 routes are raw ASGI handlers that hand the connection to `Gateway.forward`; bodies are never
re-serialised, so fields the gateway does not know reach the upstream untouched.
"""

from __future__ import annotations

import asyncio
from urllib.parse import unquote

from litestar import Request, Response, get
from litestar.enums import ScopeType
from litestar.handlers import ASGIRouteHandler, asgi
from litestar.types import Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core.web import OpenAIError
from gateway.auth import model_forbidden
from gateway.proxy import BodyKind, Gateway
from gateway.upstreams import Pool, Upstream


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    """Liveness of the gateway itself (upstreams not probed); never needs a key."""
    return {"status": "ok"}


@get("/ready")
async def ready(request: Request) -> Response:
    """200 when every upstream has a server answering GET /health now, else 503; never needs a key.

    Body: {"status": "ready" | "unready", "upstreams": {"llm": bool, "speech": bool}}.
    """
    pools: dict[str, Pool] = request.app.state.gateway.pools
    results = await asyncio.gather(*(pool.check_all() for pool in pools.values()))
    upstreams = dict(zip(pools, results, strict=True))
    ok = all(results)
    return Response({"status": "ready" if ok else "unready", "upstreams": upstreams}, status_code=200 if ok else 503)


@get("/metrics", sync_to_thread=False)
def metrics(request: Request) -> Response:
    """Prometheus text format; behind `metrics_key` when one is set (see app.metrics_guard)."""
    gateway: Gateway = request.app.state.gateway
    for pool in gateway.pools.values():
        for server in pool.servers:
            gateway.metrics.upstream_up.labels(pool.name, server.url).set(1 if server.healthy else 0)
            gateway.metrics.inflight.labels(pool.name, server.url).set(server.inflight)
    return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _gateway(scope: Scope) -> Gateway:
    return scope["litestar_app"].state.gateway


def _method_not_allowed(allowed: str) -> OpenAIError:
    return OpenAIError(
        405, f"Method not allowed; use {allowed}.", code="method_not_allowed", headers={"Allow": allowed}
    )


def proxied(path: str, upstream: Upstream, method: str, body: BodyKind | None = None) -> ASGIRouteHandler:
    """A raw ASGI route for `path` that `Gateway.forward`s `method` requests to `upstream` (405 otherwise).

    `body`: what its requests carry (see `Gateway.forward`): checked, and its `model` held to the key's allow-list.

    Raw ASGI, not a Litestar request handler: the gateway relays bytes and needs no request or
    response objects (they cost ~0.2 ms a request). Errors raised before the response starts still
    leave through Litestar's exception handlers, in the OpenAI envelope.
    """
    route = f"/v1{path}"

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] != method:  # a WebSocket scope has no method
            raise _method_not_allowed(method)
        await _gateway(scope).forward(scope, receive, send, upstream, route, body=body)

    return asgi(path, copy_scope=False)(handler)


async def _models(scope: Scope, receive: Receive, send: Send) -> None:
    # Mounted at /v1/models: GET /v1/models lists, GET /v1/models/{id} retrieves (ids may hold "/").
    if scope["type"] != ScopeType.HTTP or scope["method"] != "GET":
        raise _method_not_allowed("GET")
    gateway = _gateway(scope)
    caller = _incoming, key = gateway.caller(scope)
    model = (
        unquote((scope.get("raw_path") or scope["path"].encode()).decode("latin-1"))
        .removeprefix("/v1/models")
        .strip("/")
    )
    if model:
        if not key.allows(model):
            raise model_forbidden(key, model)
        await gateway.forward(scope, receive, send, "llm", "/v1/models/{model}", caller=caller)
    elif key.models is None:
        await gateway.forward(scope, receive, send, "llm", "/v1/models", caller=caller)
    else:
        await gateway.allowed_models(scope, send, key)


@asgi("/tokenize", copy_scope=False)
async def tokenize(scope: Scope, receive: Receive, send: Send) -> None:
    """POST /tokenize, forwarded to vLLM as it is (``{"model", "prompt" | "messages", ...}`` →
    ``{"count", "max_model_len", "tokens"}``): how clients such as the bots count tokens with the
    served model's tokenizer (core.tokens). Same path as vLLM's, so a client may talk to either.

    Read-only and cheap, but a POST like any other: the key's allow-list, body bounds and request
    limits apply (a caller counts history texts once each; core.tokens caches the counts).
    """
    if scope["type"] != ScopeType.HTTP or scope["method"] != "POST":
        raise _method_not_allowed("POST")
    await _gateway(scope).forward(scope, receive, send, "llm", "/tokenize", body="json")


v1_handlers = [
    # LLM (vLLM's OpenAI server)
    proxied("/chat/completions", "llm", "POST", "json"),
    proxied("/completions", "llm", "POST", "json"),
    asgi("/models", is_mount=True, is_static=True, copy_scope=False)(_models),
    # speech (june's speech service)
    proxied("/audio/transcriptions", "speech", "POST", "multipart"),
    proxied("/audio/translations", "speech", "POST", "multipart"),
    proxied("/audio/speech", "speech", "POST", "json"),
    proxied("/audio/voices", "speech", "GET"),
]
"""Handlers mounted under /v1; each checks the API key itself (everyone is let in when no keys are set)."""
