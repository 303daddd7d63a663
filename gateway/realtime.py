"""`/v1/realtime`: OpenAI's Realtime API (GA event protocol) over WebSocket, spoken by june's stack.

This module is the door: the WebSocket route, its keys (Authorization header or the browser's
`openai-insecure-api-key.<key>` subprotocol) and the session count. What every session shares
(the VAD model, one HTTP client, metrics) is `gateway.realtime_shared.Realtime`; one conversation
is `gateway.realtime_session.RealtimeSession` (its socket and events), with its input turns
(`realtime_input`), conversation items (`realtime_conversation`) and replies (`realtime_reply`).
"""

from __future__ import annotations

import json
from typing import Any

from litestar import WebSocket, websocket

from core.web import OpenAIError
from gateway.auth import OPEN, ApiKey, authenticate
from gateway.realtime_events import error_event

SUBPROTOCOL_KEY = "openai-insecure-api-key."
"""Browsers cannot set headers on a WebSocket: they send the key as this subprotocol + key."""


def _offered_key(socket: WebSocket) -> tuple[str | None, list[str]]:
    """(key from the `openai-insecure-api-key.` subprotocol or None, the other offered subprotocols)."""
    offered = [p.strip() for p in (socket.headers.get("sec-websocket-protocol") or "").split(",") if p.strip()]
    key = next((p[len(SUBPROTOCOL_KEY) :] for p in offered if p.startswith(SUBPROTOCOL_KEY)), None)
    return key, [p for p in offered if not p.startswith(SUBPROTOCOL_KEY) and not p.startswith("openai-")]


@websocket("/realtime")
async def realtime_endpoint(socket: WebSocket) -> None:
    """GET /v1/realtime?model=… (a conversation) or ?intent=transcription (live captions,
    `gateway.realtime_transcription`) upgraded to a WebSocket speaking the Realtime API (module docstring).

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
        intent = socket.query_params.get("intent")
        if intent not in (None, "", "transcription"):
            raise OpenAIError(
                400,
                f"Invalid value: '{intent[:64]}'. Supported values are: 'transcription'.",
                param="intent",
                code="invalid_value",
            )
        model = socket.query_params.get("model") or "june-realtime"
        if not key.allows(model) and model != "june-realtime":
            raise OpenAIError(
                403, f"This API key may not use the model '{model}'.", code="model_not_allowed", param="model"
            )
    except OpenAIError as e:
        await _refuse(socket, e.message, e.code, 1008, e.type, param=e.param)
        return
    try:
        from gateway.realtime_session import RealtimeSession  # numpy, PyAV, the pipeline: loaded with the first session
    except ImportError as e:  # a gateway installed without the realtime extra still serves everything else
        await _refuse(
            socket,
            f"Realtime is not installed on this gateway (install june[realtime]): {e}",
            "realtime_unavailable",
            1011,
        )
        return
    limit = realtime.settings.session_limit
    if realtime.sessions >= limit:
        retry = realtime.settings.busy_retry_s
        message = (
            f"The server is busy: it already serves {limit} realtime sessions, as many as it answers in time. "
            f"Try again in about {retry} s."
        )
        await _refuse(socket, message, "too_many_sessions", 1013, "server_error")
        return
    realtime.sessions += 1
    realtime.active.inc()
    try:
        server = socket.scope.get("server") or ("127.0.0.1", 8000)
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(server[0], server[0])
        base_url = f"http://[{host}]:{server[1]}" if ":" in host else f"http://{host}:{server[1]}"
        kind = "transcription" if intent == "transcription" else "realtime"
        session = RealtimeSession(socket, realtime, base_url=base_url, key=key, model=model, kind=kind)
        await session.run()
    finally:
        realtime.sessions -= 1
        realtime.active.dec()


def _authenticate(gateway: Any, socket: WebSocket, sub_key: str | None) -> ApiKey:
    if not gateway.keys:
        return OPEN
    header = socket.headers.get("authorization") or (f"Bearer {sub_key}" if sub_key else None)
    return authenticate(header, gateway.keys)


async def _refuse(
    socket: WebSocket,
    message: str,
    code: str | None,
    close_code: int,
    err_type: str = "invalid_request_error",
    *,
    param: str | None = None,
) -> None:
    await socket.send_data(json.dumps(error_event(message, code=code or "refused", param=param, type_=err_type)))
    await socket.close(code=close_code, reason=message[:120])
