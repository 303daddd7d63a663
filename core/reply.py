"""The reply-streaming core, one for the bots' pipeline (`core.voice`) and the realtime session
(`gateway.realtime_reply`): LLM deltas → visible text → sentence (or clause) pieces → speech.

`stream_reply` streams the chat completion (`VoiceClient.stream_chat`), cuts reasoning out as it
comes (`core.reasoning.VisibleStream`), cuts the visible text into pieces (`core.text.SentenceSplitter`:
sentences, and with `ReplyOptions.clause_pieces` the first pieces at a clause, the one first-clause
rule that speech's `lead_clause` keeps, the very first also at a phrase break) and hands each piece,
in order, to the caller's `speak` while the model goes on generating. `speak` decides what speech
is: the pipeline starts a synthesis task and returns, the realtime session sends the piece's
transcript and streams its audio.

With `ReplyOptions.llm_pauses_for_speech` the LLM and TTS take turns instead of sharing a CPU: once
a piece is complete the LLM stream is closed (vLLM stops the request), `speak` has the box to itself,
and the LLM then goes on from the text so far (vLLM's `continue_final_message`, prefix-cached), its
`max_tokens` less what the text so far cost (`count_tokens`).

The late ``</think>`` fix-up: a reasoning model may show that earlier text was reasoning only at a
stray ``</think>`` (its template opened the block in the prompt). The pieces already spoken are then
not the reply; `Reply.rewritten` says so and `Reply.text` is the whole content with reasoning
removed (`core.reasoning.strip_reasoning`), what the caller stores and, if it likes, speaks again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.reasoning import VisibleStream, strip_reasoning
from core.text import MIN_CHARS, SentenceSplitter
from core.voice_client import VoiceClient

__all__ = ["Reply", "ReplyOptions", "stream_reply"]


@dataclass(frozen=True)
class ReplyOptions:
    """How one reply is generated and cut, given per call.

    `max_tokens` / `temperature` / `tools` go to the chat completion (None: the server's default);
    `clause_pieces` is how many of the first pieces may end at a clause rather than a sentence, once
    they hold `core.text.MIN_CHARS` characters, the first of them also at a phrase break once it holds
    `core.text.FIRST_PHRASE_WORDS` words ("Cats are very intelligent | and …"; 0: sentences only);
    `llm_pauses_for_speech` makes the LLM and TTS take turns (module docstring).
    """

    max_tokens: int | None = 300
    temperature: float | None = None
    clause_pieces: int = 0
    llm_pauses_for_speech: bool = False
    tools: Mapping[str, Any] | None = None
    """Chat-completions `tools` / `tool_choice` for the request (the LLM then does not pause: a call is
    not continued with `continue_final_message`)."""


@dataclass
class Reply:
    """What the model answered: `raw` its whole content (reasoning included), `pieces` the visible
    pieces handed to `speak`, in order."""

    raw: str = ""
    pieces: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The reply as stored and shown: the content with reasoning removed (may be "")."""
        return strip_reasoning(self.raw)

    @property
    def rewritten(self) -> bool:
        """True when the pieces are not the reply: a late ``</think>`` showed they held reasoning."""
        return " ".join(self.pieces).split() != self.text.split()


async def stream_reply(
    client: VoiceClient,
    messages: Sequence[Mapping[str, Any]],
    speak: Callable[[str], Awaitable[None]],
    options: ReplyOptions,
    *,
    count_tokens: Callable[[str], Awaitable[int]] | None = None,
    on_tool_call: Callable[[Any], Awaitable[None]] | None = None,
) -> Reply:
    """Answer `messages` (system prompt, history, the user's turn), handing each visible piece to
    `speak` as soon as it is complete, one at a time and in order, while the model goes on.

    Returns once the model is done and every piece has been spoken. `count_tokens` (tokens of a text
    in the served model's tokenizer) lowers `max_tokens` after each pause of `llm_pauses_for_speech`;
    without it the limit stays as given. `on_tool_call` gets each streamed tool-call delta as it comes
    (`VoiceClient.stream_chat`). Raises VoiceError from the chat, or whatever `speak`
    raises; cancelling it cancels the piece being spoken too.
    """
    reply = Reply()
    raw: list[str] = []
    visible = VisibleStream()
    splitter = SentenceSplitter(
        first_clause_chars=MIN_CHARS if options.clause_pieces else None, clause_pieces=options.clause_pieces
    )
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    idle = asyncio.Event()  # everything queued so far has been spoken
    idle.set()

    async def speaker() -> None:
        while (piece := await queue.get()) is not None:
            await speak(piece)
            if queue.empty():
                idle.set()

    def put(pieces: list[str]) -> None:
        for piece in pieces:
            idle.clear()
            reply.pieces.append(piece)
            queue.put_nowait(piece)

    async def pour(deltas: AsyncGenerator[str, None]) -> bool:
        """Queue whole pieces as `deltas` come; True when the stream ended by itself."""
        async with contextlib.aclosing(deltas):
            async for delta in deltas:
                raw.append(delta)
                pieces = splitter.feed(visible.feed(delta))
                put(pieces)
                if options.llm_pauses_for_speech and not options.tools and pieces:
                    return False  # closing the stream stops the request in vLLM
        return True

    speaking = asyncio.create_task(speaker())
    try:
        first = client.stream_chat(
            messages,
            max_tokens=options.max_tokens,
            temperature=options.temperature,
            tools=options.tools,
            on_tool_call=on_tool_call,
        )
        ended = await pour(first)
        while not ended:
            waiting = asyncio.create_task(idle.wait())
            await asyncio.wait({waiting, speaking}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            if speaking.done():
                speaking.result()  # `speak` failed: its error ends the reply
            so_far = "".join(raw)
            limit = options.max_tokens
            if limit is not None and count_tokens is not None:
                limit = max(1, limit - await count_tokens(so_far))
            deltas = client.stream_chat(
                messages, max_tokens=limit, temperature=options.temperature, reply_so_far=so_far
            )
            ended = await pour(deltas)
        put(splitter.feed(visible.feed("", final=True)) + splitter.flush())
        reply.raw = "".join(raw)
        queue.put_nowait(None)
        await speaking
    finally:
        speaking.cancel()
        await asyncio.gather(speaking, return_exceptions=True)
    return reply
