"""The gateway's Litestar app: an OpenAI-compatible front door for the LLM and speech services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from litestar import Litestar, Router

from gateway.auth import api_key_guard
from gateway.proxy import Upstream
from gateway.routes import health, v1_handlers
from gateway.settings import GatewaySettings
from june.web import exception_handlers


def upstream_clients(settings: GatewaySettings) -> dict[Upstream, httpx.AsyncClient]:
    """One client per upstream, with the settings' timeouts (read: the gap allowed between chunks)."""
    timeout = httpx.Timeout(
        connect=settings.connect_timeout,
        read=settings.read_timeout,
        write=settings.write_timeout,
        pool=settings.connect_timeout,
    )
    # trust_env=False: the upstreams are internal, an HTTP(S)_PROXY meant for the outside must not apply.
    return {
        "llm": httpx.AsyncClient(base_url=settings.llm_url, timeout=timeout, trust_env=False),
        "speech": httpx.AsyncClient(base_url=settings.speech_url, timeout=timeout, trust_env=False),
    }


def create_app(
    settings: GatewaySettings, *, clients: Mapping[Upstream, httpx.AsyncClient] | None = None
) -> Litestar:
    """The gateway for `settings`.

    `clients` ({"llm": ..., "speech": ...}) replaces the upstream clients, e.g. with
    `httpx.ASGITransport` ones in tests; the caller then owns and closes them. Otherwise the
    lifespan opens one client per upstream and closes it on shutdown.
    """

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if clients is None:
                owned = upstream_clients(settings)
                for client in owned.values():
                    await stack.enter_async_context(client)
                app.state.clients = owned
            else:
                app.state.clients = dict(clients)
            yield

    v1 = Router(
        "/v1",
        route_handlers=v1_handlers,
        guards=[api_key_guard(settings.api_keys)] if settings.api_keys else [],
    )
    return Litestar(
        route_handlers=[health, v1],
        lifespan=[lifespan],
        exception_handlers=exception_handlers,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
    )
