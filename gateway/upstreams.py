"""Upstream pools: the servers behind each route, their health, and which one takes the next request.

A pool ("llm": one or more vLLM servers serving the same models; "speech": the speech service)
holds one httpx client per server. A background task probes `GET /health` on each every
`interval` seconds; a server that fails a probe or refuses a connection is taken out, and put
back when a probe succeeds again. `pick` returns the healthy server with the fewest requests in
flight (least busy); when none is healthy it still tries them all (a probe may be stale), so a
request only fails when every server actually refuses it.
"""

from __future__ import annotations

from http.cookiejar import CookieJar, DefaultCookiePolicy

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import httpx

log = logging.getLogger(__name__)

Upstream = Literal["llm", "speech"]
"""The name of a pool: a key of `app.state.pools`, and the name errors report."""


@dataclass(eq=False)
class Server:
    """One upstream server."""

    url: str
    """Base URL without /v1."""
    client: httpx.AsyncClient
    """The client all requests to it go through (one connection pool per server)."""
    healthy: bool = True
    """Last known health: probes and refused connections flip it."""
    inflight: int = 0
    """Requests sent to it whose response is not finished yet."""


@dataclass(eq=False)
class Pool:
    """The servers of one upstream."""

    name: Upstream
    servers: list[Server]
    probe: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=2.0, trust_env=False))
    """Client for health probes (short timeout, not traced: probes would flood the traces)."""

    def pick(self, exclude: Iterable[Server] = ()) -> Server | None:
        """The least busy healthy server not in `exclude`; else the least busy of the rest; None when all are excluded."""
        skip = set(map(id, exclude))
        candidates = [s for s in self.servers if id(s) not in skip]
        if not candidates:
            return None
        healthy = [s for s in candidates if s.healthy] or candidates
        return min(healthy, key=lambda s: s.inflight)

    def mark(self, server: Server, healthy: bool, reason: str = "") -> None:
        """Record `server`'s health, logging changes."""
        if server.healthy != healthy:
            log.warning("%s upstream %s is %s%s", self.name, server.url, "back" if healthy else "down", f": {reason}" if reason else "")
        server.healthy = healthy

    async def check(self, server: Server) -> bool:
        """Probe `server`'s GET /health once; updates and returns its health."""
        try:
            ok = (await self.probe.get(f"{server.url.rstrip('/')}/health")).status_code == 200
            reason = "" if ok else "GET /health was not 200"
        except httpx.HTTPError as e:
            ok, reason = False, repr(e)
        self.mark(server, ok, reason)
        return ok

    async def check_all(self) -> bool:
        """Probe every server concurrently; whether at least one is healthy."""
        results = await asyncio.gather(*(self.check(s) for s in self.servers))
        return any(results)

    async def watch(self, interval: float) -> None:
        """Probe every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            await self.check_all()

    async def aclose(self) -> None:
        await self.probe.aclose()
        for server in self.servers:
            await server.client.aclose()


def _no_cookies() -> CookieJar:
    """A cookie jar that stores nothing: one client serves every caller, so an upstream's
    Set-Cookie must not ride along on other callers' requests (it still reaches its own caller)."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))  # httpx keeps a jar as given


def make_pools(
    urls: Mapping[Upstream, list[str]], *, timeout: httpx.Timeout, limits: httpx.Limits | None = None
) -> dict[Upstream, Pool]:
    """A pool per upstream name with a client per URL."""
    # trust_env=False: the upstreams are internal, an HTTP(S)_PROXY meant for the outside must not apply.
    limits = limits or httpx.Limits(max_connections=None, max_keepalive_connections=256)
    return {
        name: Pool(
            name,
            [
                Server(url, httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits, trust_env=False, cookies=_no_cookies()))
                for url in group
            ],
        )
        for name, group in urls.items()
    }
