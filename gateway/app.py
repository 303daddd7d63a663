"""The gateway's Litestar app: an OpenAI-compatible front door for the LLM and speech services."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from litestar import Litestar, Router
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.static_files import create_static_files_router
from litestar.types import Guard
from opentelemetry.instrumentation.aiohttp_client import create_trace_config

from core.limits import Limiter, Limits, make_limiter
from core.live_signal import LiveSignal, live_signal_at
from core.observability import Telemetry, new_registry, setup
from core.web import exception_handlers
from gateway.admission import Admission
from gateway.auth import authenticate, load_keys, make_key
from gateway.metrics import GatewayMetrics
from gateway.proxy import Gateway
from gateway.realtime import realtime_endpoint
from gateway.realtime_shared import Realtime
from gateway.routes import health, metrics, ready, tokenize, v1_handlers
from gateway.settings import GatewaySettings
from gateway.upstreams import make_pools


def limits_from(settings: GatewaySettings) -> Limits:
    """The per-key limits the settings ask for."""
    return Limits(
        requests=settings.requests_per_minute,
        completion_tokens=settings.completion_tokens_per_minute,
        concurrent=settings.concurrent_requests,
        window_s=settings.limit_window_s,
    )


def live_signal(settings: GatewaySettings) -> LiveSignal | None:
    """The live window file the gateway's admission writes (`core.live_signal`), reset to "no live
    turn" (a file left by an earlier gateway could still name a deadline); None when not configured.

    Raises OSError when the file cannot be written, so a wrong path fails the start, not a turn.
    """
    signal = live_signal_at(settings.live_signal)
    if signal is not None:
        signal.set(None)
    return signal


def metrics_guard(settings: GatewaySettings) -> list[Guard]:
    """[a guard wanting `metrics_key`] when one is set, else [] (an open /metrics)."""
    if settings.metrics_key is None:
        return []
    accepted = [make_key(settings.metrics_key.get_secret_value())]

    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:  # async: no thread hop
        authenticate(connection.headers.get("authorization"), accepted)

    return [guard]


def static_page() -> Router:
    """The voice chat page (gateway/static, no build step) at `/`."""
    return create_static_files_router(
        path="/", directories=[Path(__file__).parent / "static"], html_mode=True, name="page"
    )


def create_app(
    settings: GatewaySettings, *, telemetry: Telemetry | None = None, limiter: Limiter | None = None
) -> Litestar:
    """The gateway for `settings`.

    `telemetry` (default: setup("gateway")) traces requests and the upstream clients, so W3C
    traceparent reaches the upstreams; tests pass one with an in-memory exporter. `limiter`
    replaces the one the settings describe (with limits_backend=redis, the lifespan opens and
    closes the Redis client the limiter shares with other replicas). Keys are read here, so a
    bad keys file fails at start (OSError/ValueError). The lifespan opens one aiohttp session per
    upstream server, health-checks them in the background, and closes everything on shutdown.
    """
    telemetry = telemetry or setup("gateway")
    keys = load_keys(settings.api_keys, settings.api_keys_file)
    # No total: a generation may stream for as long as it keeps sending.
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=settings.connect_timeout,
        sock_connect=settings.connect_timeout,
        sock_read=settings.read_timeout,
    )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # Recorded traces get OpenTelemetry's CLIENT span per upstream call, with W3C traceparent
        # injected; unrecorded ones no hooks at all (a caller's traceparent then passes unchanged).
        traced = [create_trace_config(tracer_provider=telemetry.tracer_provider)] if telemetry.recording else []
        pools = make_pools(
            {"llm": settings.llm_upstreams(), "speech": [settings.speech_url]}, timeout=timeout, trace_configs=traced
        )
        limits = limits_from(settings)
        redis = None
        if limiter is None and limits.active and settings.limits_backend == "redis":
            from redis.asyncio import Redis

            assert settings.redis_url, "GatewaySettings refuses limits_backend=redis without redis_url"
            redis = Redis.from_url(settings.redis_url)
        # This app's metrics only (GatewayMetrics, Realtime), served on its /metrics; made per
        # lifespan so an app started twice (tests) registers its collectors afresh.
        registry = new_registry()
        counters = GatewayMetrics(registry)
        admission = Admission(
            counters,
            hold_s=settings.live_hold_s,
            batch_concurrency=settings.batch_concurrency,
            batch_queue=settings.batch_queue,
            live_signal=live_signal(settings),
            interactive_hold_s=settings.interactive_hold_s,
        )
        app.state.gateway = gateway = Gateway(
            keys=tuple(keys),
            pools=pools,
            limiter=limiter or make_limiter(limits, redis=redis, prefix="june:gateway"),
            metrics=counters,
            max_body_bytes=settings.max_body_bytes,
            max_json_bytes=settings.max_json_bytes,
            max_json_depth=settings.max_json_depth,
            admission=admission,
            llm_priority=settings.llm_priority,
        )
        watchers = [asyncio.create_task(pool.watch(settings.health_interval_s)) for pool in pools.values()]
        app.state.realtime = Realtime(
            settings.realtime,
            registry,
            timeout=settings.read_timeout,
            telemetry=telemetry,
            admission=admission,
            live_proof=gateway.live_proof,
        )
        try:
            yield
        finally:
            await app.state.realtime.aclose()
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            for pool in pools.values():
                await pool.aclose()
            if redis is not None:
                await redis.aclose()

    v1 = Router("/v1", route_handlers=[*v1_handlers, realtime_endpoint])  # each handler checks the key itself
    metrics_router = Router("/", route_handlers=[metrics], guards=metrics_guard(settings))
    return Litestar(
        route_handlers=[health, ready, metrics_router, tokenize, v1, static_page()],
        lifespan=[lifespan],
        exception_handlers=exception_handlers,
        middleware=[telemetry.server_spans()],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
    )
