"""`/v1/realtime`: OpenAI's Realtime API (GA event protocol) over WebSocket, spoken by june's stack.

This module is the door: the WebSocket route, its keys (Authorization header or the browser's
`openai-insecure-api-key.<key>` subprotocol), the session count and what every session shares
(`Realtime`: the VAD model, one HTTP client, metrics). The conversation itself is
`gateway.realtime_session.RealtimeSession`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from litestar import WebSocket, websocket
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.auth import OPEN, ApiKey, authenticate
from gateway.realtime_events import error_event
from core.web import OpenAIError

if TYPE_CHECKING:
    from gateway.vad import SileroVAD


SUBPROTOCOL_KEY = "openai-insecure-api-key."
"""Browsers cannot set headers on a WebSocket: they send the key as this subprotocol + key."""


@dataclass(frozen=True)
class RealtimeLimits:
    """Bounds of every realtime session (from GatewaySettings)."""

    max_event_bytes: int
    max_buffer_s: float
    max_session_s: float
    max_sessions: int
    max_turns: int
    max_history_tokens: int
    transcription_model: str = "whisper-1"
    llm_pauses_for_tts: bool = True


def realtime_limits(settings: Any) -> RealtimeLimits:
    """The realtime bounds a GatewaySettings asks for."""
    return RealtimeLimits(
        max_event_bytes=settings.realtime_max_event_bytes, max_buffer_s=settings.realtime_max_buffer_s,
        max_session_s=settings.realtime_max_session_s, max_sessions=settings.realtime_max_sessions,
        max_turns=settings.realtime_max_turns, max_history_tokens=settings.realtime_max_history_tokens,
        transcription_model=settings.realtime_transcription_model,
        llm_pauses_for_tts=settings.realtime_llm_pauses_for_tts,
    )  # fmt: skip


class Realtime:
    """What every realtime session shares: the VAD model, one HTTP client for the loopback calls,
    the session count and metrics (registered in the gateway's registry). Owned by the app's lifespan."""

    def __init__(self, limits: RealtimeLimits, registry: CollectorRegistry, *, timeout: float) -> None:
        self.limits = limits
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=5.0))
        self.sessions = 0
        self._vad: SileroVAD | None = None
        self.active = Gauge("june_realtime_sessions", "Realtime WebSocket sessions open now.", registry=registry)
        self.events = Counter("june_realtime_events", "Realtime client events received, by type.", ["type"], registry=registry)
        self.first_audio = Histogram(
            "june_realtime_first_audio_seconds", "Seconds from the end of a user turn to the first reply audio sent.",
            buckets=(0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30), registry=registry,
        )  # fmt: skip

    @property
    def vad(self) -> SileroVAD:
        """The Silero model, loaded on first use (the gateway starts without it)."""
        if self._vad is None:
            from gateway.vad import SileroVAD  # numpy, onnxruntime: the realtime extra

            self._vad = SileroVAD()
        return self._vad

    async def aclose(self) -> None:
        await self.http.aclose()


def _offered_key(socket: WebSocket) -> tuple[str | None, list[str]]:
    """(key from the `openai-insecure-api-key.` subprotocol or None, the other offered subprotocols)."""
    offered = [p.strip() for p in (socket.headers.get("sec-websocket-protocol") or "").split(",") if p.strip()]
    key = next((p[len(SUBPROTOCOL_KEY) :] for p in offered if p.startswith(SUBPROTOCOL_KEY)), None)
    return key, [p for p in offered if not p.startswith(SUBPROTOCOL_KEY) and not p.startswith("openai-")]


@websocket("/realtime")
async def realtime_endpoint(socket: WebSocket) -> None:
    """GET /v1/realtime?model=… upgraded to a WebSocket speaking the Realtime API (module docstring).

    The key comes as `Authorization: Bearer` or as the `openai-insecure-api-key.<key>` subprotocol.
    A refused connection is accepted, told why in an `error` event and closed (1008 policy, 1013 busy),
    so browsers, which cannot read an HTTP refusal, see the reason too.
    """
    app = socket.app
    gateway, realtime = app.state.gateway, app.state.realtime
    sub_key, others = _offered_key(socket)
    await socket.accept(subprotocols="realtime" if "realtime" in others or sub_key else None)
    try:
        key = _authenticate(gateway, socket, sub_key)
        model = socket.query_params.get("model") or "june-realtime"
        if not key.allows(model) and model != "june-realtime":
            raise OpenAIError(403, f"This API key may not use the model '{model}'.", code="model_not_allowed", param="model")
    except OpenAIError as e:
        await _refuse(socket, e.message, e.code, 1008, e.type)
        return
    try:
        from gateway.realtime_session import RealtimeSession  # numpy, PyAV, the pipeline: loaded with the first session
    except ImportError as e:  # a gateway installed without the realtime extra still serves everything else
        await _refuse(socket, f"Realtime is not installed on this gateway (install june[realtime]): {e}", "realtime_unavailable", 1011)
        return
    if realtime.sessions >= realtime.limits.max_sessions:
        await _refuse(socket, "Too many realtime sessions; try again later.", "too_many_sessions", 1013)
        return
    realtime.sessions += 1
    realtime.active.inc()
    try:
        server = socket.scope.get("server") or ("127.0.0.1", 8000)
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(server[0], server[0])
        base_url = f"http://[{host}]:{server[1]}" if ":" in host else f"http://{host}:{server[1]}"
        session = RealtimeSession(socket, realtime, base_url=base_url, key=key, model=model)
        await session.run()
    finally:
        realtime.sessions -= 1
        realtime.active.dec()


def _authenticate(gateway: Any, socket: WebSocket, sub_key: str | None) -> ApiKey:
    if not gateway.keys:
        return OPEN
    header = socket.headers.get("authorization") or (f"Bearer {sub_key}" if sub_key else None)
    return authenticate(header, gateway.keys)


async def _refuse(socket: WebSocket, message: str, code: str | None, close_code: int, err_type: str = "invalid_request_error") -> None:
    await socket.send_data(json.dumps(error_event(message, code=code or "refused", type_=err_type)))
    await socket.close(code=close_code, reason=message[:120])
