"""A realtime session's responses: at most one in flight, each a reply streamed by june's
reply-streaming core (`core.reply.stream_reply`, the bots' pipeline runs on it too) and sent as
transcript (or text) deltas and pcm16 24 kHz audio deltas while the rest is still being generated.

Each reply is configured per call from the session config: the instructions as the system prompt,
`max_output_tokens`, the first two pieces cut at a clause (speech starts sooner) and, for audio
replies with `JUNE_GATEWAY_REALTIME_LLM_PAUSES_FOR_TTS`, the LLM and TTS taking turns on the CPU
(`core.reply`; each piece is then synthesized with `service_tier` "priority", every core).

Cancel and barge-in: `cancel` (response.cancel, or speech detected while a reply plays) stops the
reply at once (no more deltas, `response.done` with status "cancelled"); the assistant item keeps
only the pieces the user can have heard (audio sent and due to have played), or what a
`conversation.item.truncate` says was heard.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from core.disconnect import ClientGone
from core.reply import ReplyOptions, stream_reply
from core.text import speakable
from core.tokens import TokenCounter
from core.voice import DEFAULT_SYSTEM_PROMPT
from core.voice_client import VoiceClient
from core.voice_errors import VoiceError
from gateway.realtime_conversation import AssistantItem, Conversation, Send
from gateway.realtime_events import (
    INPUT_RATE,
    BadEvent,
    SessionConfig,
    assistant_item,
    error_event,
    event,
    new_id,
    response_object,
    usage,
)
from gateway.realtime_shared import Realtime

log = logging.getLogger(__name__)

BYTES_PER_MS = INPUT_RATE * 2 // 1000  # pcm16 mono: 48 bytes per millisecond
_DELTA_BYTES = 100 * BYTES_PER_MS  # audio deltas of at most 100 ms
_CLAUSE_PIECES = 2  # the first two pieces may end at a clause, so neither waits for a long sentence

Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]
"""Starts a task the session cancels when the client leaves."""


class Responses:
    """response.create / response.cancel and the one response in flight (see module docstring).

    `closed()` says whether the client has gone (then a cancelled response ends without events).
    """

    def __init__(
        self,
        realtime: Realtime,
        client: VoiceClient,
        tokens: TokenCounter,
        conversation: Conversation,
        config: SessionConfig,
        *,
        send: Send,
        spawn: Spawn,
        closed: Callable[[], bool],
    ) -> None:
        self.realtime, self.client, self.tokens, self.conversation = realtime, client, tokens, conversation
        self.config = config
        self._send, self._spawn, self._closed = send, spawn, closed
        self.active: asyncio.Task[None] | None = None
        self._cancel_reason = "client_cancelled"

    async def create(self, data: dict[str, Any], *, wait_for: asyncio.Task[Any] | None = None) -> None:
        """`response.create`: answer the newest user turn (once `wait_for`, its transcription, is done)."""
        if self.active is not None:
            raise BadEvent(
                "Conversation already has an active response in progress.",
                code="conversation_already_has_active_response",
            )
        await self.start(wait_for=wait_for)

    async def cancel_event(self, data: dict[str, Any]) -> None:
        """`response.cancel`."""
        if self.active is None:
            raise BadEvent("Cancellation failed: no active response found", code="response_cancel_not_active")
        await self.cancel("client_cancelled")

    async def start(self, *, wait_for: asyncio.Task[Any] | None) -> None:
        """Start a response (cancelling one in flight: a new turn replaces it)."""
        if self.active is not None:
            await self.cancel("turn_detected")
        self.active = self._spawn(self._respond(new_id("resp"), wait_for))

    async def cancel(self, reason: str) -> None:
        """Stop the response in flight, if any; its `response.done` says `reason`."""
        task, self.active = self.active, None
        if task is not None:
            self._cancel_reason = reason
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _respond(self, response_id: str, wait_for: asyncio.Task[Any] | None) -> None:
        """One response, traced as one span (its loopback calls are its children)."""
        with self.realtime.tracer.start_as_current_span("realtime.response", attributes={"june.response": response_id}):
            await self._run(response_id, wait_for)

    async def _run(self, response_id: str, wait_for: asyncio.Task[Any] | None) -> None:
        """One response: stream the reply, speak each piece as it completes, end with response.done."""
        audio = self.config.output_modalities == ["audio"]
        await self._send(
            event(
                "response.created", response=response_object(response_id, self.config, status="in_progress", output=[])
            )
        )
        item = AssistantItem(new_id("item"), {"role": "assistant", "content": ""}, response_id=response_id)
        status, reason = "completed", None
        try:
            if wait_for is not None:
                await asyncio.gather(wait_for, return_exceptions=True)
            turn = self.conversation.user_turn()
            if turn is None:
                status, reason = "cancelled", "no_new_user_input"
                return
            user, history = turn
            await self._open(item, audio)
            await self._stream(item, [self._system(), *history, user], audio)
        except asyncio.CancelledError:
            status, reason = "cancelled", self._cancel_reason
            if self._closed():
                raise
        except ClientGone:
            return
        except VoiceError as e:
            status, reason = "failed", error_code(e)
            await self._quietly(error_event(error_message(e), code=error_code(e), type_="server_error"))
        finally:
            if self.active is asyncio.current_task():
                self.active = None
            self._cancel_reason = "client_cancelled"
            if not self._closed():
                await self._finish(item, status, reason, audio)

    def _system(self) -> dict[str, str]:
        return {"role": "system", "content": self.config.instructions or DEFAULT_SYSTEM_PROMPT}

    async def _open(self, item: AssistantItem, audio: bool) -> None:
        wire = assistant_item(item.id, "", status="in_progress", audio=audio)
        ids = {"response_id": item.response_id, "output_index": 0}
        await self._send(event("response.output_item.added", **ids, item=wire))
        await self._send(event("conversation.item.added", previous_item_id=self.conversation.last_item_id, item=wire))
        self.conversation.last_item_id = item.id
        part = {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}
        await self._send(event("response.content_part.added", **ids, item_id=item.id, content_index=0, part=part))
        item.opened = True
        self.conversation.add(item)
        self.conversation.truncatable = item

    async def _stream(self, item: AssistantItem, messages: list[dict[str, str]], audio: bool) -> None:
        """The reply to `messages`, each piece sent as it is complete (`core.reply.stream_reply`)."""
        pauses = self.realtime.settings.llm_pauses_for_tts
        ids = {"response_id": item.response_id, "item_id": item.id, "output_index": 0, "content_index": 0}
        kind = "response.output_audio_transcript.delta" if audio else "response.output_text.delta"

        async def speak(piece: str) -> None:
            delta = piece if not item.text else " " + piece
            item.timed.append((item.audio_ms, piece))
            item.text += delta
            item.message["content"] = item.text
            await self._send(event(kind, **ids, delta=delta))
            if audio and speakable(piece):
                # While the LLM waits (llm_pauses_for_tts), TTS has the box to itself.
                async for chunk in self._synthesize(piece, priority=pauses):
                    if item.first_audio_at is None:
                        item.first_audio_at = time.perf_counter()
                        if self.conversation.turn_ended_at is not None:
                            self.realtime.first_audio.observe(item.first_audio_at - self.conversation.turn_ended_at)
                    item.audio_ms += len(chunk) // BYTES_PER_MS
                    await self._send(
                        event("response.output_audio.delta", **ids, delta=base64.b64encode(chunk).decode())
                    )

        options = ReplyOptions(
            max_tokens=self.config.max_output_tokens or 300,
            clause_pieces=_CLAUSE_PIECES,
            llm_pauses_for_speech=audio and pauses,
        )
        reply = await stream_reply(self.client, messages, speak, options, count_tokens=self.tokens.count)
        item.final = reply.text

    async def _synthesize(self, piece: str, *, priority: bool) -> AsyncIterator[bytes]:
        """`piece` spoken as pcm16 24 kHz, in deltas of ≤ 100 ms (whole samples) as the speech service
        streams it; `priority` asks for every core (see VoiceClient.stream_speech)."""
        carry = b""
        chunks = self.client.stream_speech(piece, voice=self.config.voice, response_format="pcm", priority=priority)
        async for chunk in chunks:
            carry += chunk
            cut = len(carry) - len(carry) % _DELTA_BYTES if len(carry) >= _DELTA_BYTES else len(carry) - len(carry) % 2
            for i in range(0, cut, _DELTA_BYTES):
                yield carry[i : min(i + _DELTA_BYTES, cut)]
            carry = carry[cut:]
        if len(carry) >= 2:
            yield carry[: len(carry) - len(carry) % 2]

    async def _finish(self, item: AssistantItem, status: str, reason: str | None, audio: bool) -> None:
        """The done events; a cancelled reply keeps only what the user can have heard."""
        if status == "cancelled" and item.opened and audio:
            if item.first_audio_at is None:
                item.text = ""
            else:
                played = int((time.perf_counter() - item.first_audio_at) * 1000)
                item.text = item.heard(min(item.audio_ms, played))
        elif status == "completed" and item.final is not None and item.final.split() != item.text.split():
            item.text = item.final  # a late </think> showed earlier text was reasoning: keep the final answer
        item.message["content"] = item.text
        if not item.text:
            self.conversation.remove(item)
        wire = assistant_item(
            item.id, item.text, status="completed" if status == "completed" else "incomplete", audio=audio
        )
        if item.opened:
            ids = {"response_id": item.response_id, "item_id": item.id, "output_index": 0, "content_index": 0}
            if audio:
                await self._quietly(event("response.output_audio.done", **ids))
                await self._quietly(event("response.output_audio_transcript.done", **ids, transcript=item.text))
                part = {"type": "audio", "transcript": item.text}
            else:
                await self._quietly(event("response.output_text.done", **ids, text=item.text))
                part = {"type": "text", "text": item.text}
            await self._quietly(event("response.content_part.done", **ids, part=part))
            await self._quietly(
                event("response.output_item.done", response_id=item.response_id, output_index=0, item=wire)
            )
            await self._quietly(event("conversation.item.done", previous_item_id=None, item=wire))
        prompt = [self._system()["content"], *(m["content"] for m in self.conversation.messages())]
        used = usage(await self.tokens.total(prompt), await self.tokens.count(item.text))
        output = [wire] if item.opened else []
        await self._quietly(
            event(
                "response.done",
                response=response_object(
                    item.response_id, self.config, status=status, output=output, usage=used, reason=reason
                ),
            )
        )

    async def _quietly(self, payload: dict[str, Any]) -> None:
        try:
            await self._send(payload)
        except ClientGone:
            pass


_STAGE_FAILED = {
    "transcribe": "The turn could not be transcribed; please try again.",
    "chat": "The language model could not answer; please try again.",
    "speak": "The reply could not be spoken; please try again.",
}


def error_code(error: VoiceError) -> str:
    """An `error` event's code for `error`: OpenAI's for a rate limit (429), else the failed stage's."""
    return "rate_limit_exceeded" if error.status == 429 else f"{error.stage}_failed"


def error_message(error: VoiceError) -> str:
    """What an `error` event says about `error` (no URLs or upstream bodies: those go to the log)."""
    if error.reason == "busy":
        wait = f" in {error.retry_after:g} s" if error.retry_after else " in a moment"
        return f"The server is busy; please try again{wait}."
    if error.reason in ("undecodable", "audio_too_big"):
        return "The speech service could not use this turn's audio."
    return _STAGE_FAILED[error.stage]
