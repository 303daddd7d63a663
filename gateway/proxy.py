"""Forwarding one request to an upstream and its response back, as bytes, chunk by chunk.

Nothing is parsed or re-serialised: the request body streams from the client to the upstream with
its content-type (JSON, multipart), and the upstream's status, content-type and body stream back
(SSE chunks and audio reach the client as the upstream produces them). Hop-by-hop headers are
dropped both ways; the client's Authorization is not forwarded (the upstreams are internal).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Literal

import httpx
from litestar import Request
from litestar.background_tasks import BackgroundTask
from litestar.response import Stream

from june.web import OpenAIError

log = logging.getLogger(__name__)

Upstream = Literal["llm", "speech"]
"""The name of an upstream: a key of `app.state.clients`, and the name errors report."""

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


async def _relay(response: httpx.Response, upstream: Upstream) -> AsyncIterator[bytes]:
    """The upstream body as it arrives (raw: still content-encoded, so content-length holds)."""
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.TransportError as e:
        # The status line is already sent: the only honest signal left is to break the connection
        # (re-raising does), so the client sees a truncated body rather than a clean end.
        log.warning("%s upstream broke off mid-response: %r", upstream, e)
        raise
    finally:
        await response.aclose()


async def forward(request: Request, upstream: Upstream) -> Stream:
    """Send `request` to `upstream` (same method, path, query, body) and stream its answer back.

    Raises OpenAIError 502 (code upstream_unavailable) when the upstream cannot be reached or
    breaks the exchange before answering, 504 (code upstream_timeout) when it does not answer in time.
    """
    client: httpx.AsyncClient = request.app.state.clients[upstream]
    outgoing = client.build_request(
        request.method,
        _target(request),
        headers=request_headers(request.scope["headers"]),
        content=request.stream() if _has_body(request) else None,
    )
    try:
        response = await client.send(outgoing, stream=True)
    except httpx.TimeoutException as e:
        log.warning("%s upstream timed out at %s: %r", upstream, client.base_url, e)
        raise OpenAIError(
            504, f"The {upstream} upstream did not answer in time.", code="upstream_timeout"
        ) from e
    except httpx.TransportError as e:
        log.warning("%s upstream unreachable at %s: %r", upstream, client.base_url, e)
        raise OpenAIError(
            502, f"The {upstream} upstream is unreachable ({type(e).__name__}).", code="upstream_unavailable"
        ) from e
    return Stream(
        _relay(response, upstream),
        status_code=response.status_code,
        # The upstream's content-type travels verbatim in `headers` (Litestar keeps a given one and
        # would otherwise add "; charset=utf-8" to text/*); media_type only fills in when it has none.
        media_type=response.headers.get("content-type", "application/octet-stream"),
        headers=response_headers(response.headers),
        # Runs after the last chunk or a client disconnect: frees the upstream connection, which
        # in turn tells the upstream to stop generating.
        background=BackgroundTask(response.aclose),
    )
