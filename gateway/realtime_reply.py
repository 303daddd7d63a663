"""A realtime session's responses: at most one in flight, each a reply streamed by june's
reply-streaming core (`core.reply.stream_reply`, the bots' pipeline runs on it too) and sent as
transcript (or text) deltas and pcm16 24 kHz audio deltas while the rest is still being generated.

Each reply is configured per call from the session config: the instructions as the system prompt,
`max_output_tokens`, the first two pieces cut at a clause, the first also at a phrase break such as
"… kilometers away | from Earth" (speech starts sooner; `core.text.SentenceSplitter`) and, for audio
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
from dataclasses import dataclass, field, replace
from typing import Any

from core.disconnect import ClientGone
from core.reply import ReplyOptions, stream_reply
from core.speakable import speakable
from core.tokens import TokenCounter
from core.voice import DEFAULT_SYSTEM_PROMPT
from core.voice_client import VoiceClient
from core.voice_errors import VoiceError
from gateway.admission import LiveHold
from gateway.realtime_conversation import AssistantItem, Conversation, Item, Send
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
from gateway.realtime_params import ResponseParams, response_params
from gateway.realtime_shared import Realtime
from gateway.realtime_tools import (
    ToolCallAssembler,
    ToolCallLimit,
    ToolConfig,
    chat_tools,
    check_tool_choice,
    response_choice,
)

log = logging.getLogger(__name__)

BYTES_PER_MS = INPUT_RATE * 2 // 1000  # pcm16 mono: 48 bytes per millisecond
_DELTA_BYTES = 100 * BYTES_PER_MS  # audio deltas of at most 100 ms
_LEAD_POLL_S = 0.05  # how often a spoken reply's lead over its playback is checked (seconds)
_CLAUSE_PIECES = 2  # the first two pieces may end at a clause (the first at a phrase): neither waits for a sentence

Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]
"""Starts a task the session cancels when the client leaves."""


class Responses:
    """response.create / response.cancel and the one response in flight (see module docstring).

    `closed()` says whether the client has gone (then a cancelled response ends without events).
    `tools` is the session's ToolConfig (`session.update` replaces it).
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
        self.tools = ToolConfig()
        self._send, self._spawn, self._closed = send, spawn, closed
        self.active: asyncio.Task[None] | None = None
        self._cancel_reason = "client_cancelled"

    async def create(self, data: dict[str, Any], *, wait_for: asyncio.Task[Any] | None = None) -> None:
        """`response.create`: answer the newest user turn or function output (once `wait_for`, its
        transcription, is done), with the `response` fields' overrides. Raises BadEvent naming the field."""
        if self.active is not None:
            raise BadEvent(
                "Conversation already has an active response in progress.",
                code="conversation_already_has_active_response",
            )
        params = response_params(data.get("response"), self.config, self.tools, self.conversation)
        await self.start(wait_for=wait_for, params=params)

    async def cancel_event(self, data: dict[str, Any]) -> None:
        """`response.cancel`."""
        if self.active is None:
            raise BadEvent("Cancellation failed: no active response found", code="response_cancel_not_active")
        await self.cancel("client_cancelled")

    async def start(self, *, wait_for: asyncio.Task[Any] | None, params: ResponseParams | None = None) -> None:
        """Start a response (cancelling one in flight: a new turn replaces it)."""
        if self.active is not None:
            await self.cancel("turn_detected")
        params = params or ResponseParams(replace(self.config), self.tools)
        self.active = self._spawn(self._respond(new_id("resp"), params, wait_for))

    async def cancel(self, reason: str) -> None:
        """Stop the response in flight, if any; its `response.done` says `reason`."""
        task, self.active = self.active, None
        if task is not None:
            self._cancel_reason = reason
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _respond(self, response_id: str, params: ResponseParams, wait_for: asyncio.Task[Any] | None) -> None:
        """One response, traced as one span (its loopback calls are its children); other classes of work
        wait (`gateway.admission`) until its first audio (or text, for a text response) is sent."""
        r = _Response(response_id, params, hold=self.realtime.hold_others())
        try:
            span = {"june.response": response_id}
            with self.realtime.tracer.start_as_current_span("realtime.response", attributes=span):
                await self._run(r, wait_for)
        finally:
            r.hold.release()

    async def _run(self, r: _Response, wait_for: asyncio.Task[Any] | None) -> None:
        """One response: stream the reply, speak each piece as it completes, send each function call, end
        with response.done."""
        config = r.params.config
        audio = config.output_modalities == ["audio"]
        await self._send(event("response.created", response=self._object(r, status="in_progress", output=[])))
        r.item = AssistantItem(new_id("item"), {"role": "assistant", "content": ""}, response_id=r.id, audio=audio)
        status, reason = "completed", None
        try:
            if wait_for is not None:
                await asyncio.gather(wait_for, return_exceptions=True)
            settings = self.realtime.settings
            if r.params.input is not None:
                items, after_output = r.params.input, False
            else:
                pending = self.conversation.pending()
                if pending is None:
                    status, reason = "cancelled", "no_new_user_input"
                    return
                items, after_output = pending
            tools = r.params.tools
            choice = response_choice(
                tools.choice,
                from_session=not r.params.forced_here,
                after_output=after_output,
                auto_calls=settings.auto_tool_calls,
            )
            check_tool_choice(choice, tools.tools, "tool_choice")
            r.tools = chat_tools(tools.tools, choice)
            r.messages = [self._system(config), *self.conversation.chat(settings.tool_history, items)]
            if not r.tools:
                await self._open(r)  # a plain reply: its message item opens at once, as before any tool
            await self._stream(r)
        except asyncio.CancelledError:
            status, reason = "cancelled", self._cancel_reason
            if self._closed():
                raise
        except ClientGone:
            return
        except BadEvent as e:
            status, reason = "failed", e.code
            await self._quietly(error_event(e.message, code=e.code, param=e.param))
        except ToolCallLimit as e:
            status, reason = "incomplete", "max_output_tokens"
            await self._quietly(error_event(str(e), code="tool_calls_above_limit", type_="server_error"))
        except VoiceError as e:
            status, reason = "failed", error_code(e)
            await self._quietly(error_event(error_message(e), code=error_code(e), type_="server_error"))
        finally:
            if self.active is asyncio.current_task():
                self.active = None
            self._cancel_reason = "client_cancelled"
            if not self._closed():
                await self._finish(r, status, reason)

    @staticmethod
    def _system(config: SessionConfig) -> dict[str, str]:
        return {"role": "system", "content": config.instructions or DEFAULT_SYSTEM_PROMPT}

    def _object(self, r: _Response, **fields: Any) -> dict[str, Any]:
        return response_object(
            r.id,
            r.params.config,
            metadata=r.params.metadata,
            conversation_id="conv_default" if r.params.in_conversation else None,
            **fields,
        )

    async def _conversation_event(self, kind: str, r: _Response, wire: dict[str, Any], previous: str | None) -> None:
        if r.params.in_conversation:
            await self._send(event(kind, previous_item_id=previous, item=wire))

    async def _open(self, r: _Response) -> None:
        """The response's message item: output_item.added, conversation.item.added, content_part.added."""
        item = r.item
        assert item is not None
        item.output_index = r.outputs
        r.outputs += 1
        wire = assistant_item(item.id, "", status="in_progress", audio=item.audio)
        ids = {"response_id": item.response_id, "output_index": item.output_index}
        await self._send(event("response.output_item.added", **ids, item=wire))
        r.previous[item.id] = self.conversation.last_item_id
        await self._conversation_event("conversation.item.added", r, wire, self.conversation.last_item_id)
        part = {"type": "audio", "transcript": ""} if item.audio else {"type": "text", "text": ""}
        await self._send(event("response.content_part.added", **ids, item_id=item.id, content_index=0, part=part))
        item.opened = True
        if r.params.in_conversation:
            self.conversation.last_item_id = item.id
            self.conversation.add(item)
            self.conversation.truncatable = item

    async def _tool_call(self, r: _Response, delta: Any) -> None:
        """One streamed tool-call delta: its response.* events, and the call's conversation.item.added."""
        if r.calls is None:
            r.calls = ToolCallAssembler(r.id, first_output_index=r.outputs)
        for ev in r.calls.feed(delta):
            await self._send(ev)
            if ev["type"] == "response.output_item.added":
                r.outputs += 1
                wire = ev["item"]
                r.previous[wire["id"]] = self.conversation.last_item_id
                await self._conversation_event("conversation.item.added", r, wire, self.conversation.last_item_id)
                if r.params.in_conversation:
                    self.conversation.last_item_id = wire["id"]
                    item = Item(wire["id"], {"role": "function_call", "content": ""}, wire)
                    r.call_items[wire["id"]] = item
                    self.conversation.add(item)

    async def _stream(self, r: _Response) -> None:
        """The reply to `r.messages`, each piece sent as it is complete (`core.reply.stream_reply`)."""
        item = r.item
        assert item is not None
        audio = item.audio
        pauses = self.realtime.settings.llm_pauses_for_tts
        kind = "response.output_audio_transcript.delta" if audio else "response.output_text.delta"

        async def speak(piece: str) -> None:
            if not item.opened:
                await self._open(r)
            ids = {"response_id": r.id, "item_id": item.id, "output_index": item.output_index, "content_index": 0}
            delta = piece if not item.text else " " + piece
            item.timed.append((item.audio_ms, piece))
            item.text += delta
            item.message["content"] = item.text
            await self._send(event(kind, **ids, delta=delta))
            if not audio:
                r.hold.release()  # a text reply has started: the rest goes on beside other work
            if audio and speakable(piece):
                # While the LLM waits (llm_pauses_for_tts), TTS has the box to itself.
                async for chunk in self._synthesize(piece, r.params.config.voice, priority=pauses):
                    if item.first_audio_at is None:
                        r.hold.release()  # the answer is playing: held work may start
                        item.first_audio_at = time.perf_counter()
                        if self.conversation.turn_ended_at is not None:
                            self.realtime.first_audio.observe(item.first_audio_at - self.conversation.turn_ended_at)
                    item.audio_ms += len(chunk) // BYTES_PER_MS
                    await self._send(
                        event("response.output_audio.delta", **ids, delta=base64.b64encode(chunk).decode())
                    )

        options = ReplyOptions(
            max_tokens=r.params.config.max_output_tokens or 300,
            clause_pieces=_CLAUSE_PIECES,
            llm_pauses_for_speech=audio and pauses,
            tools=r.tools or None,
        )
        ahead = asyncio.create_task(self._keep_ahead(r, item)) if audio else None
        try:
            reply = await stream_reply(
                self.client,
                r.messages,
                speak,
                options,
                count_tokens=self.tokens.count,
                on_tool_call=lambda delta: self._tool_call(r, delta),
            )
        finally:
            if ahead is not None:
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)
                r.hold.release()  # every piece is spoken: nothing left to keep ahead
        item.final = reply.text

    async def _keep_ahead(self, r: _Response, item: AssistantItem) -> None:
        """While the reply is written (the caller cancels this when it is): once its audio plays, hold
        other work back again (`r.hold`) whenever the audio is less than `playback_lead_s` ahead of the
        client's playback, until it is twice as far ahead, for at most `hold_s` in all (see
        RealtimeSettings.playback_lead_s)."""
        lead_s = self.realtime.settings.playback_lead_s
        budget = self.realtime.admission.hold_s
        held_since: float | None = None
        while lead_s > 0:
            await asyncio.sleep(_LEAD_POLL_S)
            if item.first_audio_at is None:
                continue
            now = time.perf_counter()
            lead = item.audio_ms / 1000 - (now - item.first_audio_at)
            if held_since is None and lead < lead_s and budget > 0:
                r.hold, held_since = self.realtime.hold_others(), now
            elif held_since is not None and (lead >= 2 * lead_s or now - held_since >= budget):
                r.hold.release()
                budget -= now - held_since
                held_since = None

    async def _synthesize(self, piece: str, voice: str | None, *, priority: bool) -> AsyncIterator[bytes]:
        """`piece` spoken as pcm16 24 kHz, in deltas of ≤ 100 ms (whole samples) as the speech service
        streams it; `priority` asks for every core (see VoiceClient.stream_speech)."""
        carry = b""
        chunks = self.client.stream_speech(piece, voice=voice, response_format="pcm", priority=priority)
        async for chunk in chunks:
            carry += chunk
            cut = len(carry) - len(carry) % _DELTA_BYTES if len(carry) >= _DELTA_BYTES else len(carry) - len(carry) % 2
            for i in range(0, cut, _DELTA_BYTES):
                yield carry[i : min(i + _DELTA_BYTES, cut)]
            carry = carry[cut:]
        if len(carry) >= 2:
            yield carry[: len(carry) - len(carry) % 2]

    async def _finish(self, r: _Response, status: str, reason: str | None) -> None:
        """The done events; a cancelled reply keeps only what the user can have heard."""
        item = r.item
        assert item is not None
        audio = item.audio
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
        done = "completed" if status == "completed" else "incomplete"
        wire = assistant_item(item.id, item.text, status=done, audio=audio)
        output: list[tuple[int, dict[str, Any]]] = []
        if item.opened:
            ids = {"response_id": r.id, "item_id": item.id, "output_index": item.output_index, "content_index": 0}
            if audio:
                await self._quietly(event("response.output_audio.done", **ids))
                await self._quietly(event("response.output_audio_transcript.done", **ids, transcript=item.text))
                part = {"type": "audio", "transcript": item.text}
            else:
                await self._quietly(event("response.output_text.done", **ids, text=item.text))
                part = {"type": "text", "text": item.text}
            await self._quietly(event("response.content_part.done", **ids, part=part))
            await self._quietly(
                event("response.output_item.done", response_id=r.id, output_index=item.output_index, item=wire)
            )
            if r.params.in_conversation:
                previous = r.previous.get(item.id)
                await self._quietly(event("conversation.item.done", previous_item_id=previous, item=wire))
            output.append((item.output_index, wire))
        if r.calls is not None:
            output += await self._finish_calls(r, r.calls)
        text = [m.get("content") or "" for m in r.messages]
        used = usage(await self.tokens.total([str(t) for t in text]), await self.tokens.count(item.text))
        wires = [w for _, w in sorted(output, key=lambda o: o[0])]
        await self._quietly(
            event("response.done", response=self._object(r, status=status, output=wires, usage=used, reason=reason))
        )

    async def _finish_calls(self, r: _Response, calls: ToolCallAssembler) -> list[tuple[int, dict[str, Any]]]:
        """The calls' closing events; each call's conversation item gets its full arguments."""
        for ev in calls.finish():
            await self._quietly(ev)
            if ev["type"] == "response.output_item.done":
                wire = ev["item"]
                if (call := r.call_items.get(wire["id"])) is not None:
                    call.wire, call.message["content"] = wire, wire["arguments"]
                if r.params.in_conversation:
                    done = event("conversation.item.done", previous_item_id=r.previous.get(wire["id"]), item=wire)
                    await self._quietly(done)
        return [(i, wire) for i, wire in enumerate(calls.items, start=calls.first_output_index)]

    async def _quietly(self, payload: dict[str, Any]) -> None:
        try:
            await self._send(payload)
        except ClientGone:
            pass


@dataclass(eq=False)
class _Response:
    """One response's state while it runs."""

    id: str
    params: ResponseParams
    item: AssistantItem | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: dict[str, Any] = field(default_factory=dict)
    calls: ToolCallAssembler | None = None
    call_items: dict[str, Item] = field(default_factory=dict)
    outputs: int = 0
    """Output items opened so far (the next one's output_index)."""
    previous: dict[str, str | None] = field(default_factory=dict)
    """Each output item's previous_item_id in the conversation."""
    hold: LiveHold = field(default_factory=lambda: LiveHold(None))
    """Other work held back until this response's first audio or text (`gateway.admission`)."""


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
