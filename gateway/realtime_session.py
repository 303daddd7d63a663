"""One /v1/realtime conversation: its socket and events (see gateway.realtime for the WebSocket
route that starts it).

A session reads client events, checks their size and shape, dispatches each to the part that owns
it and sends server events back, one at a time:

- `gateway.realtime_input.InputAudio`: the input audio buffer, server VAD, early transcription,
  the commit of a turn;
- `gateway.realtime_conversation.Conversation`: the items and the bounded history;
- `gateway.realtime_reply.Responses`: the response in flight, streamed by june's reply core
  (`core.reply`, shared with the bots), cancel and barge-in.

Every call goes through the voice stages' client (`core.voice_client.VoiceClient`) to this
gateway's own /v1 routes (loopback) with the caller's key, so a live conversation counts against
the same per-key limits, allow-lists and metrics as any other request.

Bounds (`gateway.settings.RealtimeSettings`, JUNE_GATEWAY_REALTIME_*): each client event ≤
`max_event_bytes` (larger → `error`, the socket stays open), the input buffer ≤ `max_buffer_s`, a
session ≤ `max_session_s`, at most `max_sessions` at once, the conversation ≤ `max_turns` turns
and `max_history_tokens`. A client that goes away cancels everything it started (the upstream
streams are closed with it).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

from core.disconnect import ClientGone
from core.tokens import TokenCounter
from core.voice import DEFAULT_SYSTEM_PROMPT
from core.voice_client import VoiceClient
from gateway import realtime_transcription as transcription
from gateway.auth import ApiKey
from gateway.realtime_conversation import Conversation
from gateway.realtime_events import BadEvent, SessionConfig, error_event, event, new_id
from gateway.realtime_input import InputAudio
from gateway.realtime_reply import Responses
from gateway.realtime_shared import Realtime

log = logging.getLogger(__name__)


class RealtimeSession:
    """One WebSocket's conversation: reads client events, dispatches them, runs their work as tasks."""

    def __init__(
        self, socket: WebSocket, realtime: Realtime, *, base_url: str, key: ApiKey, model: str, kind: str = "realtime"
    ) -> None:
        self.socket, self.realtime, self.settings = socket, realtime, realtime.settings
        self.id = new_id("sess")
        self.config = SessionConfig(
            model=model,
            instructions=DEFAULT_SYSTEM_PROMPT,
            transcription_model=self.settings.transcription_model,
            type=kind,
        )
        api_key = key.secret.decode() if key.secret else None
        client = VoiceClient(realtime.http, base_url=base_url, api_key=api_key, retry_attempts=2)
        tokens = TokenCounter(
            realtime.http, base_url, api_key=api_key, timeout=2.0
        )  # the model's tokenizer, via /tokenize
        self._tasks: set[asyncio.Task[Any]] = set()
        self._send_lock = asyncio.Lock()
        self._closed = False
        self.conversation = Conversation(
            tokens, self.send, max_turns=self.settings.max_turns, max_history_tokens=self.settings.max_history_tokens
        )
        self.responses = Responses(
            realtime,
            client,
            tokens,
            self.conversation,
            self.config,
            send=self.send,
            spawn=self._spawn,
            closed=lambda: self._closed,
        )
        self.input = InputAudio(
            realtime, client, self.conversation, self.responses, self.config, send=self.send, spawn=self._spawn
        )
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "session.update": self._session_update,
            "input_audio_buffer.append": self.input.append,
            "input_audio_buffer.commit": self.input.commit,
            "input_audio_buffer.clear": self.input.clear,
            "conversation.item.create": self.conversation.item_create,
            "conversation.item.truncate": self.conversation.truncate,
            "conversation.item.retrieve": self.conversation.retrieve,
            "conversation.item.delete": self.conversation.delete,
            "response.create": self._response_create,
            "response.cancel": self.responses.cancel_event,
        }

    # --- the socket -----------------------------------------------------------------------------

    async def send(self, payload: dict[str, Any]) -> None:
        """Send one server event. Raises ClientGone when the client has left (its work then stops)."""
        if self._closed:
            raise ClientGone
        async with self._send_lock:
            try:
                await self.socket.send_data(json.dumps(payload))
            except (WebSocketDisconnect, RuntimeError, OSError) as e:
                self._closed = True
                raise ClientGone from e

    async def run(self) -> None:
        """Serve the socket until the client leaves or the session's time is up."""
        await self.send(event("session.created", session=self._wire()))
        try:
            async with asyncio.timeout(self.settings.max_session_s):
                await self._read_loop()
        except ClientGone:
            pass
        except TimeoutError:
            await self._safe_send(error_event("Your session hit the maximum duration.", code="session_expired"))
            await self._close(1000, "session expired")
        finally:
            self._closed = True
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _read_loop(self) -> None:
        while True:
            try:
                message = await self.socket.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if not isinstance(raw, str):
                raw_bytes = message.get("bytes")
                raw_bytes = raw_bytes if isinstance(raw_bytes, bytes) else b""
                if len(raw_bytes) > self.settings.max_event_bytes:
                    await self._too_large(len(raw_bytes))
                    continue
                raw = raw_bytes.decode("utf-8", errors="replace")
            if len(raw) > self.settings.max_event_bytes:
                await self._too_large(len(raw))
                continue
            await self._handle(raw)

    async def _too_large(self, size: int) -> None:
        await self.send(
            error_event(
                f"Event of {size} bytes is larger than the limit of {self.settings.max_event_bytes} bytes; "
                "send audio in smaller chunks.",
                code="event_too_large",
            )
        )

    async def _safe_send(self, payload: dict[str, Any]) -> None:
        try:
            await self.send(payload)
        except ClientGone:
            pass

    async def _close(self, code: int, reason: str) -> None:
        try:
            await self.socket.close(code=code, reason=reason)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass

    # --- client events --------------------------------------------------------------------------

    async def _handle(self, raw: str) -> None:
        client_id = None
        try:
            try:
                data = json.loads(raw)
            except ValueError as e:
                raise BadEvent(f"The event is not valid JSON: {e}", code="invalid_json") from e
            except RecursionError as e:  # ~1000 nested brackets exhaust json's C decoder: not a ValueError
                raise BadEvent("The event is nested too deeply to read.", code="invalid_json") from e
            if not isinstance(data, dict) or not isinstance(data.get("type"), str):
                raise BadEvent(
                    "An event must be a JSON object with a string 'type'.", code="invalid_event", param="type"
                )
            client_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
            kind = data["type"]
            handler = self._handlers.get(kind)
            self.realtime.events.labels(kind if handler else "unknown").inc()
            if handler is None:
                raise BadEvent(
                    f"Invalid value: '{kind[:64]}'. Supported values are: {', '.join(self._handlers)}.",
                    code="invalid_value",
                    param="type",
                )
            await handler(data)
        except BadEvent as e:
            await self.send(error_event(e.message, code=e.code, param=e.param, client_event_id=client_id))

    async def _session_update(self, data: dict[str, Any]) -> None:
        session = data.get("session")
        kind = transcription.session_type(session, self.config.type)
        if kind != self.config.type and (self.conversation.items or self.responses.active or self.input.buffer):
            raise BadEvent(
                f"This is a {self.config.type} session and its conversation has begun: its type cannot change "
                "now (connect with ?intent=transcription for a transcription session).",
                param="session.type",
            )
        if kind == "transcription":
            transcription.check_update(session)  # refuses tools and the other conversation-only fields
        tools = (
            self.responses.tools.updated(session, "session")
            if isinstance(session, dict) and kind != "transcription"
            else None
        )
        self.config.apply(session)  # checks everything else (raises BadEvent) before the tools change
        self.config.type = kind
        if tools is not None:
            self.responses.tools = tools
        self.input.configure()
        await self.send(event("session.updated", session=self._wire()))

    def _wire(self) -> dict[str, Any]:
        """The session object as session.created / .updated carry it, for its type (a conversation's
        with its tools, gateway.realtime_tools.ToolConfig)."""
        if self.config.type == "transcription":
            return transcription.wire(self.config, self.id)
        return {**self.config.wire(self.id), **self.responses.tools.wire()}

    async def _response_create(self, data: dict[str, Any]) -> None:
        if self.config.type == "transcription":
            raise BadEvent(
                "A transcription session never responds: response.create is not available in it "
                "(connect with ?model=… for a conversation).",
                code="unsupported_in_transcription_session",
                param="type",
            )
        await self.responses.create(data, wait_for=self.input.transcribing)

    # --- tasks ----------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None and not isinstance(error, ClientGone):
            log.error("realtime session %s: task failed", self.id, exc_info=error)
