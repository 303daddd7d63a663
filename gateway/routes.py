"""The gateway's routes: OpenAI's paths, each forwarded to the upstream that serves it, plus
/health, /ready and /metrics.

Handlers take the raw request and hand it to `proxy.forward`; bodies are never re-serialised, so
fields the gateway does not know reach the upstream untouched.
"""

from __future__ import annotations

import asyncio

from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Stream
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.auth import OPEN, ApiKey, model_forbidden
from gateway.proxy import allowed_models, forward
from gateway.upstreams import Pool


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    """Liveness of the gateway itself (upstreams not probed); never needs a key."""
    return {"status": "ok"}


@get("/ready")
async def ready(request: Request) -> Response:
    """200 when every upstream has a server answering GET /health now, else 503; never needs a key.

    Body: {"status": "ready" | "unready", "upstreams": {"llm": bool, "speech": bool}}.
    """
    pools: dict[str, Pool] = request.app.state.pools
    results = await asyncio.gather(*(pool.check_all() for pool in pools.values()))
    upstreams = dict(zip(pools, results, strict=True))
    ok = all(results)
    return Response({"status": "ready" if ok else "unready", "upstreams": upstreams}, status_code=200 if ok else 503)


@get("/metrics", sync_to_thread=False)
def metrics(request: Request) -> Response:
    """Prometheus text format; behind `metrics_key` when one is set (see app.metrics_guard)."""
    state = request.app.state
    for pool in state.pools.values():
        for server in pool.servers:
            state.metrics.upstream_up.labels(pool.name, server.url).set(1 if server.healthy else 0)
            state.metrics.inflight.labels(pool.name, server.url).set(server.inflight)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _key(request: Request) -> ApiKey:
    return getattr(request.state, "api_key", OPEN)


# --- LLM (vLLM's OpenAI server) ---


@post("/chat/completions")
async def chat_completions(request: Request) -> Stream:
    return await forward(request, "llm", allow_list=True)


@post("/completions")
async def completions(request: Request) -> Stream:
    return await forward(request, "llm", allow_list=True)


@get("/models")
async def list_models(request: Request) -> Stream | Response:
    key = _key(request)
    if key.models is None:
        return await forward(request, "llm")
    return Response(await allowed_models(request, key))


@get("/models/{model_id:path}")
async def retrieve_model(request: Request, model_id: FromPath[str]) -> Stream:
    model = model_id.lstrip("/")
    key = _key(request)
    if not key.allows(model):
        raise model_forbidden(key, model)
    return await forward(request, "llm")


# --- speech (june's speech service) ---


@post("/audio/transcriptions")
async def transcriptions(request: Request) -> Stream:
    return await forward(request, "speech")


@post("/audio/translations")
async def translations(request: Request) -> Stream:
    return await forward(request, "speech")


@post("/audio/speech")
async def speech(request: Request) -> Stream:
    return await forward(request, "speech")


@get("/audio/voices")
async def voices(request: Request) -> Stream:
    return await forward(request, "speech")


v1_handlers = [
    chat_completions,
    completions,
    list_models,
    retrieve_model,
    transcriptions,
    translations,
    speech,
    voices,
]
"""Handlers mounted under /v1, behind the key guard (which lets everyone in when no keys are set)."""
