"""Upstream pools: the servers behind each route, their health, and which one takes the next request.

A pool ("llm": one or more vLLM servers serving the same models; "speech": the speech service)
holds one aiohttp session (one connection pool) per server. A background task probes
`GET /health` on each every `interval` seconds; a server that fails a probe or refuses a
connection is taken out, and put back when a probe succeeds again. `pick` returns the healthy
server with the fewest requests in flight (least busy); when none is healthy it still tries them
all (a probe may be stale), so a request only fails when every server actually refuses it.
`Pool.request` is the failover: it sends a request to the least busy server and, when that one
refuses the connection, marks it down and tries the next.

Why aiohttp and not httpx for the upstream hop: relaying a request through httpx cost the gateway
about 1 ms of CPU, through aiohttp (C HTTP parser) about 0.3 ms (`june bench gateway`), and the
gateway's goal is to add under 1 ms. The rest of june (bots, CLI, tests) uses httpx.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from core.web import OpenAIError
from gateway.asgi import BodyStream

log = logging.getLogger(__name__)

Upstream = Literal["llm", "speech"]
"""The name of a pool: a key of `Gateway.pools`, and the name errors report."""

KEEPALIVE_S = 4.0
"""How long an idle upstream connection is kept: below uvicorn's (and so vLLM's) 5 s keep-alive,
so the gateway never reuses a connection the upstream is about to close."""
BROKE_OFF = (aiohttp.ClientError, asyncio.TimeoutError)
"""What an upstream exchange can fail with: a refused or dropped connection, payload errors, a timeout."""


def upstream_session(
    timeout: aiohttp.ClientTimeout, trace_configs: Sequence[aiohttp.TraceConfig] = ()
) -> aiohttp.ClientSession:
    """A session for relaying: raw bodies, no cookies, no headers of its own, no proxy from the env.

    - auto_decompress=False: bodies pass as the upstream encoded them (content-length stays true).
    - DummyCookieJar: one session serves every caller, so an upstream's Set-Cookie must not ride
      along on other callers' requests (it still reaches its own caller).
    - skip_auto_headers: the upstream sees the client's headers, not aiohttp's defaults
      (an Accept-Encoding the client never sent would come back as a body it cannot read).
    - no connection limit: the upstream (vLLM's scheduler) decides how much it takes at once.
    - `trace_configs`: aiohttp request hooks, e.g. OpenTelemetry's CLIENT spans (see app.create_app).
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S),
        timeout=timeout,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
        trust_env=False,
        trace_configs=list(trace_configs) or None,
    )


@dataclass(eq=False)
class Server:
    """One upstream server."""

    url: str
    """Base URL without /v1 (and without a trailing /)."""
    session: aiohttp.ClientSession
    """The session all requests to it go through (one connection pool per server)."""
    healthy: bool = True
    """Last known health: probes and refused connections flip it."""
    inflight: int = 0
    """Requests sent to it whose response is not finished yet."""


def _probe_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0), trust_env=False)


@dataclass(eq=False)
class Pool:
    """The servers of one upstream."""

    name: Upstream
    servers: list[Server]
    probe: aiohttp.ClientSession = field(default_factory=_probe_session)
    """Session for health probes (short timeout, not traced: probes would flood the traces)."""

    def pick(self, exclude: Iterable[Server] = ()) -> Server | None:
        """The least busy healthy server not in `exclude`; else the least busy of the rest; None when all
        are excluded."""
        skip = set(map(id, exclude))
        candidates = [s for s in self.servers if id(s) not in skip]
        if not candidates:
            return None
        healthy = [s for s in candidates if s.healthy] or candidates
        return min(healthy, key=lambda s: s.inflight)

    def mark(self, server: Server, healthy: bool, reason: str = "") -> None:
        """Record `server`'s health, logging changes."""
        if server.healthy != healthy:
            state, detail = "back" if healthy else "down", f": {reason}" if reason else ""
            log.warning("%s upstream %s is %s%s", self.name, server.url, state, detail)
        server.healthy = healthy

    async def check(self, server: Server) -> bool:
        """Probe `server`'s GET /health once; updates and returns its health."""
        try:
            async with self.probe.get(f"{server.url}/health") as response:
                ok = response.status == 200
            reason = "" if ok else f"GET /health answered {response.status}"
        except BROKE_OFF as e:
            ok, reason = False, why(e)
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

    async def request(
        self, method: str, target: str, headers: CIMultiDict[str], content: bytes | BodyStream | None
    ) -> tuple[Server, aiohttp.ClientResponse]:
        """Send `method target` (path and query, already encoded) to the least busy server and return
        the first that answers (status line and headers), with its answer.

        A server that refuses the connection (or does not accept it in time) is marked down and the
        next one is tried, as long as `content` can be sent again (bytes or None; a BodyStream is read
        once). The chosen server's `inflight` is raised by one for the response returned; the caller
        lowers it when done. Whatever else happens here (a failed server, the client's body failing,
        the task cancelled because the client left) lowers it again before leaving.
        Raises OpenAIError 502 (code upstream_unavailable) when no server can be reached or one breaks
        the exchange before answering, 504 (code upstream_timeout) when it does not answer in time,
        or the BodyStream's own error when the client's body was what failed.
        """
        replayable = not isinstance(content, BodyStream)
        tried: list[Server] = []
        while True:
            server = self.pick(tried)
            assert server is not None  # pools are never empty, and we stop before running out
            tried.append(server)
            server.inflight += 1
            try:
                # A CLIENT span and traceparent come from the session's OpenTelemetry hooks, when traced.
                url = URL(server.url + target, encoded=True)
                return server, await server.session.request(method, url, headers=headers, data=content)
            except BaseException as e:  # CancelledError included: a client that leaves must not leak a count
                server.inflight -= 1
                if not isinstance(e, Exception):  # cancelled (the client left, or shutdown): stays so
                    raise
                if isinstance(content, BodyStream) and content.error is not None:
                    raise content.error from e
                if not isinstance(e, BROKE_OFF):
                    raise
                if isinstance(e, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
                    # The request never reached this server: take it out and try the next one.
                    self.mark(server, False, why(e))
                    if replayable and self.pick(tried) is not None:
                        continue
                if isinstance(e, asyncio.TimeoutError):  # aiohttp's connect and read timeouts are ones
                    raise self.timed_out(server, e) from e
                raise self.unreachable(server, e) from e

    def timed_out(self, server: Server, e: Exception) -> OpenAIError:
        """504 upstream_timeout for `server` not answering in time (logged)."""
        log.warning("%s upstream timed out at %s: %s", self.name, server.url, why(e))
        return OpenAIError(504, f"The {self.name} upstream did not answer in time.", code="upstream_timeout")

    def unreachable(self, server: Server, e: Exception) -> OpenAIError:
        """502 upstream_unavailable for `server` refusing or breaking the exchange (logged)."""
        log.warning("%s upstream unreachable at %s: %s", self.name, server.url, why(e))
        return OpenAIError(
            502, f"The {self.name} upstream is unreachable ({type(e).__name__}).", code="upstream_unavailable"
        )

    async def aclose(self) -> None:
        await self.probe.close()
        for server in self.servers:
            await server.session.close()


def why(e: BaseException) -> str:
    """A one-line reason for a failed upstream exchange, e.g. "ClientConnectorError: Cannot connect
    to host 127.0.0.1:8002 ssl:default [Connect call failed ...]" (aiohttp's reprs run to a
    paragraph; a timeout's str is empty, so its name is the reason)."""
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def make_pools(
    urls: Mapping[Upstream, list[str]],
    *,
    timeout: aiohttp.ClientTimeout,
    trace_configs: Sequence[aiohttp.TraceConfig] = (),
) -> dict[Upstream, Pool]:
    """A pool per upstream name with a session per URL (call inside the running event loop)."""
    return {
        name: Pool(name, [Server(url.rstrip("/"), upstream_session(timeout, trace_configs)) for url in group])
        for name, group in urls.items()
    }
