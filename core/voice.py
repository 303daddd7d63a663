"""The voice pipeline: speech → text → reply → speech, for the bots (`bots.conversation`),
`june voice` and the benchmarks, on top of the voice stages' OpenAI client (`core.voice_client`,
which owns retries, busy waits and errors: every method here raises its VoiceError).

Overlap: the reply is streamed, cut into sentences as they complete, and each sentence is sent to
speech synthesis while the model keeps generating; the sentences' audio is decoded to PCM, joined
and encoded once as OGG/Opus (one clean stream, not chained Ogg). ``overlap=False`` is the plain
sequential path (whole reply, then one synthesis), kept for comparison (`june bench pipeline`).

Reasoning never reaches the user, speech or history: ``delta.reasoning`` / ``reasoning_content``
are ignored and ``<think>…</think>`` blocks are cut out of the content (also mid-stream).
This module imports no bot library, so Telegram and Discord share it; what a person is told when
a stage fails is the bots' (`bots.apologies`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import numpy as np

from core.audio import AudioDecodeError, decode, encode
from core.reasoning import strip_reasoning
from core.reply import ReplyOptions, stream_reply
from core.speakable import speakable
from core.voice_client import Message, VoiceClient
from core.voice_errors import VoiceError

__all__ = ["DEFAULT_SYSTEM_PROMPT", "SAMPLE_RATE", "PipelineResult", "Timings", "VoicePipeline"]

log = logging.getLogger(__name__)

SAMPLE_RATE = 48000
"""Rate (Hz) of the joined PCM, Opus' native rate."""

DEFAULT_SYSTEM_PROMPT = (
    "You are June, a friendly voice assistant. Answer in one to three short spoken sentences, "
    "in plain words without lists, code or formatting."
)


def _visible_reply(raw: str) -> str:
    """The model's whole answer with reasoning removed; raises VoiceError(stage="chat") when nothing is left."""
    reply = strip_reasoning(raw)
    if not reply:
        raise VoiceError("chat", "the model's answer was empty once reasoning was removed")
    return reply


@dataclass(frozen=True)
class Timings:
    """Seconds (wall clock) per stage; a stage that did not run is None.

    `chat` runs until the last token; `speak` from the end of the chat until the audio is ready
    (with overlap most synthesis already happened during `chat`); `first_sentence` is when the
    first sentence was handed to synthesis, counted from the start.
    """

    transcribe: float | None
    chat: float
    speak: float | None
    total: float
    first_sentence: float | None = None


@dataclass(frozen=True)
class PipelineResult:
    """What one exchange produced.

    `transcript` is the user's words (the text itself for `run_text`); `reply` is the answer as
    sent and stored in history, reasoning removed (speech gets what `core.speakable.speakable` keeps);
    `audio` is the spoken reply as OGG/Opus bytes (48 kHz mono) and `samples` the same as float32
    PCM at SAMPLE_RATE, both None when speech was not asked for or nothing in the reply is speakable
    (only code, links or emoji: the answer then goes as text).
    """

    transcript: str
    reply: str
    audio: bytes | None
    timings: Timings
    samples: np.ndarray | None = None

    @property
    def audio_seconds(self) -> float:
        """Length of the spoken reply in seconds (0 without audio)."""
        return 0.0 if self.samples is None else len(self.samples) / SAMPLE_RATE


class VoicePipeline:
    """Transcribe → chat → speak against one OpenAI-style base URL (the gateway), over `http`.

    `http`, `base_url`, `api_key`, `chat_model`, `retry_attempts` and `max_wait` make its
    `VoiceClient` (`self.client`; see there).
    `voice` None leaves the voice to the speech service; `language` (ISO 639-1, e.g. "en") hints
    transcription, None lets it detect the language.
    `max_history_turns` bounds how many past user/assistant pairs go into each chat request.
    `temperature` None leaves sampling to the server.
    Every method raises VoiceError (EmptyTranscript for silence) and nothing else for upstream
    trouble.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str | None = None,
        chat_model: str | None = None,
        transcription_model: str = "whisper-1",
        speech_model: str = "tts-1",
        voice: str | None = None,
        language: str | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        max_history_turns: int = 8,
        max_reply_tokens: int | None = 300,
        overlap: bool = True,
        retry_attempts: int = 3,
        temperature: float | None = None,
        max_wait: float = 120.0,
    ) -> None:
        self.client = VoiceClient(
            http,
            base_url=base_url,
            api_key=api_key,
            chat_model=chat_model,
            retry_attempts=retry_attempts,
            max_wait=max_wait,
        )
        self.transcription_model = transcription_model
        self.speech_model = speech_model
        self.voice = voice
        self.language = language
        self.system_prompt = system_prompt
        self.max_history_turns = max_history_turns
        self.overlap = overlap
        self._reply_options = ReplyOptions(max_tokens=max_reply_tokens, temperature=temperature)

    async def run_voice(self, audio: bytes, history: list[Message], *, filename: str = "voice.ogg") -> PipelineResult:
        """Answer a voice message (`audio`: any container the speech service decodes, e.g. OGG/Opus).

        `filename` tells the speech service the container (e.g. "video.mp4" for a Telegram video
        note). `history` is the chat so far (oldest first); it is read, never modified. Raises
        EmptyTranscript when nothing was said, VoiceError when a stage fails.
        """
        start = time.perf_counter()
        transcript = await self.transcribe(audio, filename=filename)
        result = await self.answer(transcript, history, speak=True, started=start)
        log.info("voice exchange: %s", result.timings)
        return result

    async def run_text(self, text: str, history: list[Message], *, speak: bool = False) -> PipelineResult:
        """Answer a text message; with `speak`, also synthesise the reply. `history` is not modified."""
        return await self.answer(text, history, speak=speak)

    async def answer(
        self, text: str, history: list[Message], *, speak: bool, started: float | None = None
    ) -> PipelineResult:
        """The reply to `text` (and its audio with `speak`), overlapped or sequential per `self.overlap`.

        `started` (a ``time.perf_counter()`` value) is when the exchange began, for the timings.
        """
        start = time.perf_counter()
        t_transcribe = None if started is None else start - started
        origin = start if started is None else started
        if speak and self.overlap:
            reply, samples, t_chat, first = await self._overlapped(text, history, origin)
        else:
            reply = await self.chat(text, history)
            t_chat = time.perf_counter() - start
            samples = await self._synthesize(reply) if speak and speakable(reply) else None
            first = t_chat + (t_transcribe or 0.0)
        if samples is None:  # not asked for, or nothing speakable (only code, links, emoji): text only
            return PipelineResult(text, reply, None, Timings(t_transcribe, t_chat, None, time.perf_counter() - origin))
        audio = await asyncio.to_thread(encode, samples, SAMPLE_RATE, "opus")
        now = time.perf_counter()
        timings = Timings(t_transcribe, t_chat, now - (start + t_chat), now - origin, first)
        return PipelineResult(text, reply, audio, timings, samples)

    async def _overlapped(
        self, text: str, history: list[Message], origin: float
    ) -> tuple[str, np.ndarray | None, float, float | None]:
        """Stream the reply; synthesise each finished sentence while the rest is generated.

        Returns (reply, samples or None when nothing in it is speakable, chat seconds, seconds to
        the first sentence sent to speech)."""
        start = time.perf_counter()
        tasks: list[asyncio.Task[np.ndarray]] = []
        first: float | None = None

        async def speak(piece: str) -> None:
            nonlocal first
            if not speakable(piece):
                return  # only code, markup, links or emoji: the speech service would refuse it
            if first is None:
                first = time.perf_counter() - origin
            tasks.append(asyncio.create_task(self._synthesize(piece)))

        try:
            streamed = await stream_reply(self.client, self.messages(text, history), speak, self._reply_options)
            reply = _visible_reply(streamed.text)
            t_chat = time.perf_counter() - start
            if streamed.rewritten:
                # Reasoning showed itself only late (a stray </think> after text already went to
                # synthesis): drop those sentences and speak the final reply as a whole.
                log.warning("streamed sentences differ from the final reply; speaking it again whole")
                for task in tasks:
                    task.cancel()
                return reply, await self._synthesize(reply) if speakable(reply) else None, t_chat, first
            if not tasks:
                return reply, None, t_chat, first
            parts = await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
        return reply, np.concatenate(parts), t_chat, first

    async def speak(self, text: str) -> bytes:
        """`text` spoken as OGG/Opus bytes (what `core.speakable.speakable` keeps of it). Raises VoiceError."""
        samples = await self._synthesize(text)
        return await asyncio.to_thread(encode, samples, SAMPLE_RATE, "opus")

    async def transcribe(self, audio: bytes, *, filename: str = "voice.ogg") -> str:
        """The words in `audio`, stripped. Raises EmptyTranscript for silence, VoiceError otherwise."""
        return await self.client.transcribe(
            audio, filename=filename, model=self.transcription_model, language=self.language
        )

    async def chat(self, text: str, history: list[Message]) -> str:
        """The assistant's whole answer to `text` after `history`, reasoning removed; never empty.

        Raises VoiceError(stage="chat") when the model fails or answers only reasoning.
        """
        return _visible_reply("".join([delta async for delta in self.stream_chat(text, history)]))

    def stream_chat(self, text: str, history: list[Message]) -> AsyncIterator[str]:
        """The answer's raw content deltas (see `VoiceClient.stream_chat`) to `text` after the last
        `max_history_turns` pairs of `history`, under the system prompt. Raises VoiceError(stage="chat")."""
        options = self._reply_options
        return self.client.stream_chat(
            self.messages(text, history), max_tokens=options.max_tokens, temperature=options.temperature
        )

    def messages(self, text: str, history: list[Message]) -> list[Message]:
        """The chat request's messages: the system prompt, the last `max_history_turns` pairs of
        `history`, then `text` as the user's turn."""
        keep = 2 * self.max_history_turns
        past = history[-keep:] if keep > 0 else []
        return [
            {"role": "system", "content": self.system_prompt},
            *({"role": m["role"], "content": m["content"]} for m in past),
            {"role": "user", "content": text},
        ]

    async def models(self) -> list[str]:
        """Ids from ``GET /v1/models`` (at least one). Raises VoiceError(stage="chat")."""
        return await self.client.models()

    async def _synthesize(self, text: str) -> np.ndarray:
        """`text` spoken, as float32 PCM at SAMPLE_RATE. Raises VoiceError(stage="speak")."""
        content = await self.client.speech(text, model=self.speech_model, voice=self.voice)
        try:
            return await asyncio.to_thread(decode, content, SAMPLE_RATE)
        except AudioDecodeError as e:
            raise VoiceError("speak", f"undecodable audio {content[:16]!r}: {e}") from e
