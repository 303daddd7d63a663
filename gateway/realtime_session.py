"""One /v1/realtime conversation (see gateway.realtime for the WebSocket route that starts it).

A session is one more client of the shared voice pipeline (`core.voice.VoicePipeline`, which the bots use too): a user turn (audio cut by server VAD or
committed by the client, or a typed `conversation.item.create`) is transcribed, the reply streamed
from the LLM, and each sentence synthesized (pcm16 24 kHz, streamed by the speech service) and sent
as `response.output_audio.delta` while the rest is still being generated. The pipeline's calls go
to this gateway's own /v1 routes (loopback) with the caller's key, so a live conversation counts
against the same per-key limits, allow-lists and metrics as any other request.

Barge-in: speech detected while a reply plays cancels it at once (no more deltas, `response.done`
with status "cancelled"); the assistant item keeps only the sentences the user can have heard (audio
sent and due to have played), or what a `conversation.item.truncate` says was heard.

Bounds: each client event ≤ `realtime_max_event_bytes` (larger → `error`, the socket stays open),
the input buffer ≤ `realtime_max_buffer_s`, a session ≤ `realtime_max_session_s`, at most
`realtime_max_sessions` at once, the conversation ≤ `realtime_max_turns` turns and
`realtime_max_history_tokens` (once passed, the oldest go down to half of each: `core.history`).
A client that goes away cancels everything it started (the upstream streams are closed with it).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

from gateway.auth import ApiKey
from gateway.realtime_events import (
    INPUT_RATE, BadEvent, SessionConfig, assistant_item, error_event, event, new_id, response_object, usage, user_item,
)  # fmt: skip
from gateway.vad import FRAME_MS, TurnDetector
from core.audio import encode, from_pcm16
from core.history import oldest_to_drop
from core.text import MIN_CHARS, SentenceSplitter, VisibleStream, speakable, strip_reasoning
from core.tokens import TokenCounter
from core.voice import DEFAULT_SYSTEM_PROMPT, VoicePipeline
from core.voice_client import EmptyTranscript, Message, VoiceError

if TYPE_CHECKING:
    from gateway.realtime import Realtime, RealtimeLimits

log = logging.getLogger(__name__)

_BYTES_PER_MS = INPUT_RATE * 2 // 1000  # pcm16 mono: 48 bytes per millisecond
_DELTA_BYTES = 100 * _BYTES_PER_MS  # audio deltas of at most 100 ms


class RealtimeSession:
    """One WebSocket's conversation: reads client events, runs turns and responses as tasks.

    State: the session config, the input audio buffer (pcm16 24 kHz bytes since `_buffer_start_ms`),
    the VAD, the conversation (bounded list of messages), at most one response in flight.
    """

    def __init__(self, socket: WebSocket, realtime: Realtime, *, base_url: str, key: ApiKey, model: str) -> None:
        self.socket, self.realtime, self.limits = socket, realtime, realtime.limits
        self.id = new_id("sess")
        self.config = SessionConfig(model=model, instructions=DEFAULT_SYSTEM_PROMPT, transcription_model=realtime.limits.transcription_model)
        api_key = key.secret.decode() if key.secret else None
        self.pipeline = VoicePipeline(
            realtime.http, base_url=base_url, api_key=api_key, transcription_model=self.config.transcription_model,
            max_history_turns=limits_turns(realtime.limits), retry_attempts=2,
        )
        self.tokens = TokenCounter(realtime.http, base_url, api_key=api_key, timeout=2.0)  # the model's tokenizer, via /tokenize
        self.detector: TurnDetector | None = None
        self.buffer = bytearray()
        self._buffer_start_ms = 0  # session audio time of buffer[0]
        self._speech_start_ms: int | None = None
        self._item_id = new_id("item")  # id of the user item the buffer will become
        self.messages: list[Message] = []
        self.response: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._send_lock = asyncio.Lock()
        self._closed = False
        self._last_item: str | None = None
        self._turn_ended_at: float | None = None  # perf_counter at the end of the user's last turn
        self._transcribing: asyncio.Task[None] | None = None
        # Transcription started at a pause in the turn: (the buffer then, its task), used when the turn ends there.
        self._early: tuple[bytes, asyncio.Task[Any]] | None = None
        self._cancel_reason = "client_cancelled"
        self._spoken: dict[str, tuple[Message, list[tuple[int, str]]]] = {}  # item id → (message, timed sentences)

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
        await self.send(event("session.created", session=self.config.wire(self.id)))
        try:
            async with asyncio.timeout(self.limits.max_session_s):
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
            if raw is None:
                raw_bytes = message.get("bytes") or b""
                if len(raw_bytes) > self.limits.max_event_bytes:
                    await self._too_large(len(raw_bytes))
                    continue
                raw = raw_bytes.decode("utf-8", errors="replace")
            if len(raw) > self.limits.max_event_bytes:
                await self._too_large(len(raw))
                continue
            await self._handle(raw)

    async def _too_large(self, size: int) -> None:
        await self.send(error_event(
            f"Event of {size} bytes is larger than the limit of {self.limits.max_event_bytes} bytes; send audio in smaller chunks.",
            code="event_too_large",
        ))  # fmt: skip

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
            if not isinstance(data, dict) or not isinstance(data.get("type"), str):
                raise BadEvent("An event must be a JSON object with a string 'type'.", code="invalid_event", param="type")
            client_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
            kind = data["type"]
            handler = self._handlers().get(kind)
            self.realtime.events.labels(kind if handler else "unknown").inc()
            if handler is None:
                raise BadEvent(f"Invalid value: '{kind[:64]}'. Supported values are: {', '.join(self._handlers())}.",
                               code="invalid_value", param="type")  # fmt: skip
            await handler(data)
        except BadEvent as e:
            await self.send(error_event(e.message, code=e.code, param=e.param, client_event_id=client_id))

    def _handlers(self) -> dict[str, Any]:
        return {
            "session.update": self._session_update,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.commit": self._commit,
            "input_audio_buffer.clear": self._clear,
            "conversation.item.create": self._item_create,
            "conversation.item.truncate": self._truncate,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
        }

    async def _session_update(self, data: dict[str, Any]) -> None:
        self.config.apply(data.get("session"))
        self.pipeline.system_prompt = self.config.instructions or DEFAULT_SYSTEM_PROMPT
        self.pipeline.voice = self.config.voice
        self.pipeline.language = self.config.language
        self.pipeline.transcription_model = self.config.transcription_model
        self.pipeline.max_reply_tokens = self.config.max_output_tokens or 300
        if self.detector is not None and self.config.vad is not None:
            self.detector.options = self.config.vad
            self.detector.pause_ms = _pause_ms(self.config.vad.silence_duration_ms)
        elif self.config.vad is None:
            self.detector, self._speech_start_ms = None, None
        await self.send(event("session.updated", session=self.config.wire(self.id)))

    async def _append(self, data: dict[str, Any]) -> None:
        audio = data.get("audio")
        if not isinstance(audio, str):
            raise BadEvent("audio must be a base64 string of pcm16 mono 24 kHz.", param="audio")
        try:
            pcm = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError) as e:
            raise BadEvent(f"audio is not valid base64: {e}", param="audio") from e
        if len(pcm) % 2:
            raise BadEvent("audio must hold whole 16-bit samples (an even number of bytes).", param="audio")
        max_bytes = int(self.limits.max_buffer_s * 1000) * _BYTES_PER_MS
        if self.config.vad is None and len(self.buffer) + len(pcm) > max_bytes:
            raise BadEvent(f"The input audio buffer would exceed {self.limits.max_buffer_s:g} s; commit or clear it first.",
                           code="input_audio_buffer_too_large", param="audio")  # fmt: skip
        self.buffer += pcm
        if self.config.vad is None:
            return
        if self.detector is None:
            self.detector = TurnDetector(self.realtime.vad, self.config.vad, start_ms=self._end_ms() - len(pcm) // _BYTES_PER_MS,
                                         pause_ms=_pause_ms(self.config.vad.silence_duration_ms))
        events = self.detector.feed(pcm) if len(pcm) < 10 * INPUT_RATE else await asyncio.to_thread(self.detector.feed, pcm)
        for kind, ms in events:
            if kind == "start":
                await self._speech_started(ms)
            elif kind == "stop":
                await self._speech_stopped(ms)
            elif kind == "pause":  # transcribe now; kept if the turn ends in this silence
                self._drop_early()
                snapshot = bytes(self.buffer)
                self._early = (snapshot, self._spawn(self._transcript_or_error(snapshot)))
            else:  # "resume": the user went on, so that transcript would miss words
                self._drop_early()
        if self._speech_start_ms is None:
            # Not speaking: keep only what a start could still reach back to (the prefix padding).
            self._trim_to(self._end_ms() - self.config.vad.prefix_padding_ms - 100)
        elif len(self.buffer) > max_bytes:  # a turn longer than the limit is cut and answered
            await self._speech_stopped(self._end_ms())

    def _end_ms(self) -> int:
        return self._buffer_start_ms + len(self.buffer) // _BYTES_PER_MS

    def _trim_to(self, ms: int) -> None:
        drop = max(0, ms - self._buffer_start_ms) * _BYTES_PER_MS
        if drop:
            del self.buffer[:drop]
            self._buffer_start_ms += drop // _BYTES_PER_MS

    def _drop_early(self) -> None:
        if self._early is not None:
            self._early[1].cancel()
            self._early = None

    async def _speech_started(self, ms: int) -> None:
        self._drop_early()
        self._speech_start_ms = ms
        self._trim_to(ms)
        await self.send(event("input_audio_buffer.speech_started", audio_start_ms=ms, item_id=self._item_id))
        if self.response is not None and self.config.interrupt_response:
            await self._cancel_response("turn_detected")

    async def _speech_stopped(self, ms: int) -> None:
        self._speech_start_ms = None
        if self.detector is not None:
            self.detector.reset()
        self._turn_ended_at = time.perf_counter()
        await self.send(event("input_audio_buffer.speech_stopped", audio_end_ms=ms, item_id=self._item_id))
        await self._commit_buffer(respond=self.config.create_response)

    async def _commit(self, data: dict[str, Any]) -> None:
        if len(self.buffer) < 100 * _BYTES_PER_MS:
            raise BadEvent(
                f"Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but buffer only has {len(self.buffer) / _BYTES_PER_MS:.2f}ms of audio.",
                code="input_audio_buffer_commit_empty",
            )
        self._turn_ended_at = time.perf_counter()
        if self.detector is not None:
            self.detector.reset()
        self._speech_start_ms = None
        await self._commit_buffer(respond=False)  # without VAD the client asks with response.create

    async def _clear(self, data: dict[str, Any]) -> None:
        self._drop_early()
        self._buffer_start_ms = self._end_ms()
        self.buffer.clear()
        self._speech_start_ms = None
        if self.detector is not None:
            self.detector.reset()
        await self.send(event("input_audio_buffer.cleared"))

    async def _commit_buffer(self, *, respond: bool) -> None:
        """Turn the buffer into a user item: committed + item events now, transcription in a task."""
        pcm, item_id = bytes(self.buffer), self._item_id
        self._buffer_start_ms = self._end_ms()
        self.buffer.clear()
        self._item_id = new_id("item")
        await self.send(event("input_audio_buffer.committed", item_id=item_id, previous_item_id=self._last_item))
        item = user_item(item_id, [{"type": "input_audio", "transcript": None}])
        await self.send(event("conversation.item.added", previous_item_id=self._last_item, item=item))
        await self.send(event("conversation.item.done", previous_item_id=self._last_item, item=item))
        self._last_item = item_id
        # The message is added now, filled when its transcript arrives: a response created meanwhile waits for it.
        message: Message = {"role": "user", "content": ""}
        self._remember(message)
        early, self._early = self._early, None
        if early is not None and not pcm.startswith(early[0]):  # the buffer changed since the pause
            early[1].cancel()
            early = None
        self._transcribing = self._spawn(self._transcribe(item_id, pcm, message, early[1] if early else None))
        if respond:
            await self._start_response(wait_for=self._transcribing)

    async def _transcript_or_error(self, pcm: bytes) -> str | VoiceError:
        """The transcript of `pcm` (a turn, or the turn up to a pause), or the error to report if it is used."""
        try:
            return await self.pipeline.transcribe(await asyncio.to_thread(_wav, pcm), filename="turn.wav")
        except VoiceError as e:  # EmptyTranscript included
            return e

    async def _transcribe(self, item_id: str, pcm: bytes, message: Message, early: asyncio.Task[Any] | None = None) -> None:
        """Transcribe the committed turn `pcm` into `message`; `early` is the transcription started at
        the pause where the turn ended (only silence came after it), so its text is the turn's."""
        try:
            result = await (early if early is not None else self._transcript_or_error(pcm))
            if isinstance(result, VoiceError):
                raise result
            text = result
        except EmptyTranscript:
            text = ""
        except VoiceError as e:
            self._forget(message)
            await self.send(event("conversation.item.input_audio_transcription.failed", item_id=item_id, content_index=0,
                                  error={"type": "transcription_error", "code": _code(e), "message": _message(e)}))  # fmt: skip
            return
        message["content"] = text
        if not text:
            self._forget(message)
        await self.send(event(
            "conversation.item.input_audio_transcription.completed", item_id=item_id, content_index=0, transcript=text,
            usage={"type": "duration", "seconds": round(len(pcm) / (2 * INPUT_RATE), 3)},
        ))  # fmt: skip

    async def _item_create(self, data: dict[str, Any]) -> None:
        item = data.get("item")
        if not isinstance(item, dict) or item.get("type", "message") != "message":
            raise BadEvent("item must be a message item.", param="item.type")
        role = item.get("role")
        if role not in ("user", "assistant", "system"):
            raise BadEvent("item.role must be user, assistant or system.", param="item.role")
        content = item.get("content")
        if not isinstance(content, list) or not content:
            raise BadEvent("item.content must be a non-empty list.", param="item.content")
        texts = [part.get("text") or part.get("transcript") for part in content if isinstance(part, dict)]
        if not texts or not all(isinstance(t, str) for t in texts):
            raise BadEvent("Only text content (input_text / text / output_text) is supported in conversation.item.create.",
                           param="item.content")  # fmt: skip
        text = " ".join(texts).strip()
        if not text or await self.tokens.count(text) > self.limits.max_history_tokens:
            raise BadEvent("The item's text is empty or too long.", param="item.content", code="string_above_max_length")
        item_id = item.get("id") if isinstance(item.get("id"), str) else new_id("item")
        self._remember({"role": role, "content": text})
        wire = {**user_item(item_id, content), "role": role}
        await self.send(event("conversation.item.added", previous_item_id=self._last_item, item=wire))
        await self.send(event("conversation.item.done", previous_item_id=self._last_item, item=wire))
        self._last_item = item_id
        self._turn_ended_at = time.perf_counter()

    async def _truncate(self, data: dict[str, Any]) -> None:
        audio_end_ms = data.get("audio_end_ms")
        if not isinstance(audio_end_ms, int) or audio_end_ms < 0:
            raise BadEvent("audio_end_ms must be a non-negative integer.", param="audio_end_ms")
        item_id = data.get("item_id")
        spoken = self._spoken.get(item_id) if isinstance(item_id, str) else None
        if spoken is None:
            raise BadEvent(f"Item '{str(item_id)[:64]}' is not an assistant audio item of this session.", param="item_id", code="item_not_found")
        message, sentences = spoken
        message["content"] = " ".join(s for start, s in sentences if start < audio_end_ms)
        await self.send(event("conversation.item.truncated", item_id=item_id, content_index=0, audio_end_ms=audio_end_ms))

    async def _response_create(self, data: dict[str, Any]) -> None:
        if self.response is not None:
            raise BadEvent("Conversation already has an active response in progress.", code="conversation_already_has_active_response")
        await self._start_response(wait_for=self._transcribing)

    async def _response_cancel(self, data: dict[str, Any]) -> None:
        if self.response is None:
            raise BadEvent("Cancellation failed: no active response found", code="response_cancel_not_active")
        await self._cancel_response("client_cancelled")

    # --- responses ------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None and not isinstance(error, ClientGone):
            log.error("realtime session %s: task failed", self.id, exc_info=error)

    async def _start_response(self, *, wait_for: asyncio.Task[None] | None) -> None:
        if self.response is not None:
            await self._cancel_response("turn_detected")
        self.response = self._spawn(self._respond(new_id("resp"), wait_for))

    async def _cancel_response(self, reason: str) -> None:
        task, self.response = self.response, None
        if task is not None:
            self._cancel_reason = reason
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _respond(self, response_id: str, wait_for: asyncio.Task[None] | None) -> None:
        """One response: stream the reply, speak each sentence as it completes, end with response.done."""
        audio = self.config.output_modalities == ["audio"]
        item_id = new_id("item")
        await self.send(event("response.created", response=response_object(response_id, self.config, status="in_progress", output=[])))
        sentences: list[tuple[int, str]] = []  # (ms into the reply audio where the sentence starts, text)
        reply = Reply(item_id=item_id, response_id=response_id)
        status, reason = "completed", None
        try:
            if wait_for is not None:
                await asyncio.gather(wait_for, return_exceptions=True)
            user = next((m for m in reversed(self.messages) if m["role"] == "user" and m["content"]), None)
            if user is None or self.messages[-1] is not user:
                status, reason = "cancelled", "no_new_user_input"
                return
            history = self.messages[:-1]
            await self._open_item(reply, audio)
            self._spoken = {item_id: (reply.message, sentences)}  # only the latest reply can be truncated
            await self._stream_reply(reply, user["content"], history, sentences, audio)
        except asyncio.CancelledError:
            status, reason = "cancelled", self._cancel_reason
            if self._closed:
                raise
        except ClientGone:
            return
        except VoiceError as e:
            status, reason = "failed", _code(e)
            await self._safe_send(error_event(_message(e), code=_code(e), type_="server_error"))
        finally:
            if self.response is asyncio.current_task():
                self.response = None
            self._cancel_reason = "client_cancelled"
            if not self._closed:
                await self._finish(reply, status, reason, sentences, audio)

    async def _open_item(self, reply: Reply, audio: bool) -> None:
        item = assistant_item(reply.item_id, "", status="in_progress", audio=audio)
        ids = {"response_id": reply.response_id, "output_index": 0}
        await self.send(event("response.output_item.added", **ids, item=item))
        await self.send(event("conversation.item.added", previous_item_id=self._last_item, item=item))
        self._last_item = reply.item_id
        part = {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}
        await self.send(event("response.content_part.added", **ids, item_id=reply.item_id, content_index=0, part=part))
        reply.opened = True
        self._remember(reply.message)

    async def _stream_reply(self, reply: Reply, text: str, history: list[Message], sentences: list[tuple[int, str]], audio: bool) -> None:
        """LLM deltas → visible text → sentences → queue; a speaker task voices them in order.

        With `llm_pauses_for_tts` (audio replies), the LLM and TTS take turns instead of sharing the
        CPU: the LLM stream is closed once a piece (a sentence, or one of the first two clauses) is
        queued, which stops it in vLLM; the speaker synthesizes it with every core; then the LLM goes
        on from the text so far (vLLM's `continue_final_message`, prefix-cached).
        """
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        spoken = asyncio.Event()  # everything queued so far has been synthesized (or skipped)
        spoken.set()
        speaker = asyncio.create_task(self._speak_queue(reply, queue, sentences, audio, spoken))
        take_turns = audio and self.limits.llm_pauses_for_tts
        try:
            visible, splitter = VisibleStream(), SentenceSplitter(first_clause_chars=MIN_CHARS, clause_pieces=2)  # speak sooner
            raw: list[str] = []

            def put(pieces: list[str]) -> None:
                for piece in pieces:
                    spoken.clear()
                    queue.put_nowait(piece)

            async def pour(deltas: AsyncIterator[str]) -> bool:
                """Queue whole pieces as `deltas` come; True when the stream ended by itself."""
                async with contextlib.aclosing(deltas):
                    async for delta in deltas:
                        raw.append(delta)
                        pieces = splitter.feed(visible.feed(delta))
                        put(pieces)
                        if take_turns and pieces:
                            return False  # closing the stream stops the request in vLLM
                return True

            ended = await pour(self._chat(text, history))
            while not ended:
                waiting = asyncio.create_task(spoken.wait())
                await asyncio.wait({waiting, speaker}, return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
                if speaker.done():
                    speaker.result()  # the speaker failed: its error ends the reply
                so_far = "".join(raw)
                spent = await self.tokens.count(so_far)
                ended = await pour(self._chat(text, history, so_far, spent))
            put(splitter.feed(visible.feed("", final=True)) + splitter.flush())
            reply.final = strip_reasoning("".join(raw))
            queue.put_nowait(None)
            await speaker
        finally:
            speaker.cancel()
            await asyncio.gather(speaker, return_exceptions=True)

    async def _speak_queue(
        self, reply: Reply, queue: asyncio.Queue[str | None], sentences: list[tuple[int, str]], audio: bool, spoken: asyncio.Event
    ) -> None:
        """Send each queued sentence as transcript (and audio) deltas; `spoken` is set whenever the
        queue is empty after a sentence is done."""
        ids = {"response_id": reply.response_id, "item_id": reply.item_id, "output_index": 0, "content_index": 0}
        kind = "response.output_audio_transcript.delta" if audio else "response.output_text.delta"
        while (sentence := await queue.get()) is not None:
            piece = sentence if not reply.text else " " + sentence
            sentences.append((reply.audio_ms, sentence))
            reply.text += piece
            reply.message["content"] = reply.text
            await self.send(event(kind, **ids, delta=piece))
            if audio and speakable(sentence):
                # While the LLM waits (llm_pauses_for_tts), TTS has the box to itself.
                async for chunk in self._synthesize(sentence, priority=self.limits.llm_pauses_for_tts):
                    if reply.first_audio_at is None:
                        reply.first_audio_at = time.perf_counter()
                        if self._turn_ended_at is not None:
                            self.realtime.first_audio.observe(reply.first_audio_at - self._turn_ended_at)
                    reply.audio_ms += len(chunk) // _BYTES_PER_MS
                    await self.send(event("response.output_audio.delta", **ids, delta=base64.b64encode(chunk).decode()))
            if queue.empty():
                spoken.set()

    def _chat(self, text: str, history: list[Message], so_far: str = "", spent: int = 0) -> AsyncIterator[str]:
        limit = self.pipeline.max_reply_tokens
        return self.pipeline.client.stream_chat(
            self.pipeline.messages(text, history), max_tokens=None if limit is None else max(1, limit - spent),
            reply_so_far=so_far,
        )

    async def _synthesize(self, sentence: str, *, priority: bool = False) -> AsyncIterator[bytes]:
        """`sentence` spoken as pcm16 24 kHz, in pieces of ≤ 100 ms (whole samples) as the speech service
        streams it; `priority` asks for every core (see VoicePipeline.stream_speech)."""
        carry = b""
        async for chunk in self.pipeline.client.stream_speech(
            sentence, model=self.pipeline.speech_model, voice=self.pipeline.voice, response_format="pcm", priority=priority
        ):
            carry += chunk
            cut = len(carry) - len(carry) % _DELTA_BYTES if len(carry) >= _DELTA_BYTES else len(carry) - len(carry) % 2
            for i in range(0, cut, _DELTA_BYTES):
                yield carry[i : min(i + _DELTA_BYTES, cut)]
            carry = carry[cut:]
        if len(carry) >= 2:
            yield carry[: len(carry) - len(carry) % 2]

    async def _finish(self, reply: Reply, status: str, reason: str | None, sentences: list[tuple[int, str]], audio: bool) -> None:
        """The done events; a cancelled reply keeps only what the user can have heard."""
        if status == "cancelled" and reply.opened and audio:
            heard = reply.audio_ms if reply.first_audio_at is None else min(reply.audio_ms, int((time.perf_counter() - reply.first_audio_at) * 1000))
            reply.text = " ".join(s for start, s in sentences if start < heard) if reply.first_audio_at else ""
        elif status == "completed" and reply.final is not None and reply.final.split() != reply.text.split():
            reply.text = reply.final  # a late </think> showed earlier text was reasoning: keep the final answer
        reply.message["content"] = reply.text
        if not reply.text:
            self._forget(reply.message)
        item = assistant_item(reply.item_id, reply.text, status="completed" if status == "completed" else "incomplete", audio=audio)
        if reply.opened:
            ids = {"response_id": reply.response_id, "item_id": reply.item_id, "output_index": 0, "content_index": 0}
            if audio:
                await self._safe_send(event("response.output_audio.done", **ids))
                await self._safe_send(event("response.output_audio_transcript.done", **ids, transcript=reply.text))
                part = {"type": "audio", "transcript": reply.text}
            else:
                await self._safe_send(event("response.output_text.done", **ids, text=reply.text))
                part = {"type": "text", "text": reply.text}
            await self._safe_send(event("response.content_part.done", **ids, part=part))
            await self._safe_send(event("response.output_item.done", response_id=reply.response_id, output_index=0, item=item))
            await self._safe_send(event("conversation.item.done", previous_item_id=None, item=item))
        tokens_in = await self.tokens.total([self.pipeline.system_prompt, *(m["content"] for m in self.messages)])
        used = usage(tokens_in, await self.tokens.count(reply.text))
        output = [item] if reply.opened else []
        await self._safe_send(event("response.done", response=response_object(reply.response_id, self.config, status=status,
                                                                              output=output, usage=used, reason=reason)))  # fmt: skip

    # --- conversation ---------------------------------------------------------------------------

    def _remember(self, message: Message) -> None:
        """Add `message`; past max_turns pairs or max_history_tokens, drop the oldest down to half of
        each (`core.history`: the requests then share their beginning for vLLM's prefix cache)."""
        self.messages.append(message)
        sizes = [self.tokens.cached(m["content"]) for m in self.messages]
        del self.messages[: oldest_to_drop(sizes, 2 * self.limits.max_turns, self.limits.max_history_tokens, keep_last=1)]
        while len(self.messages) > 1 and self.messages[0]["role"] == "assistant":
            self.messages.pop(0)  # the conversation starts with the user, as in the bots' history

    def _forget(self, message: Message) -> None:
        self.messages = [m for m in self.messages if m is not message]


class ClientGone(Exception):
    """The WebSocket is closed: whatever the session was doing for it stops."""


@dataclass(eq=False)
class Reply:
    """The assistant item a response is filling."""

    item_id: str
    response_id: str
    text: str = ""
    final: str | None = None
    audio_ms: int = 0
    first_audio_at: float | None = None
    opened: bool = False

    def __post_init__(self) -> None:
        self.message: Message = {"role": "assistant", "content": ""}


def limits_turns(limits: RealtimeLimits) -> int:
    """History turns the pipeline may send: the session already bounds its messages, so all of them."""
    return limits.max_turns + 1


def _code(error: VoiceError) -> str:
    """The `error` event's code: OpenAI's for a rate limit (429), else the failed stage's."""
    return "rate_limit_exceeded" if error.status == 429 else f"{error.stage}_failed"


_STAGE_FAILED = {
    "transcribe": "The turn could not be transcribed; please try again.",
    "chat": "The language model could not answer; please try again.",
    "speak": "The reply could not be spoken; please try again.",
}


def _message(error: VoiceError) -> str:
    """What an `error` event says about `error` (no URLs or upstream bodies: those go to the log)."""
    if error.reason == "busy":
        wait = f" in {error.retry_after:g} s" if error.retry_after else " in a moment"
        return f"The server is busy; please try again{wait}."
    if error.reason in ("undecodable", "audio_too_big"):
        return "The speech service could not use this turn's audio."
    return _STAGE_FAILED[error.stage]


def _pause_ms(silence_duration_ms: int) -> int | None:
    """How long a silence inside a turn must last before the turn is transcribed speculatively: about
    half the silence that ends a turn, so the transcription runs while VAD waits to be sure (none
    when that would leave under 100 ms to win)."""
    pause = max(FRAME_MS * 4, silence_duration_ms // 2)
    return pause if silence_duration_ms - pause >= 100 else None


def _wav(pcm: bytes) -> bytes:
    """pcm16 mono 24 kHz as a WAV file (what the transcription route takes). CPU: call in a thread."""
    return encode(from_pcm16(pcm), INPUT_RATE, "wav")
