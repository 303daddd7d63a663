"""The voice pipeline: speech → text → reply → speech, over an OpenAI-style API (june's gateway).

Clients: both bots (`bots.conversation`) and the gateway's realtime session
(`gateway.realtime_session`). It speaks OpenAI's API through the `openai` SDK (`AsyncOpenAI`) over
the caller's `httpx.AsyncClient`, so OpenTelemetry's httpx tracing and respx in tests see every
request, with the SDK's own retries off (the policy below is june's):

- ``client.audio.transcriptions.create`` → ``POST /v1/audio/transcriptions`` → the words said
- ``client.chat.completions.create(stream=True)`` → ``POST /v1/chat/completions``, streamed (the SDK
  parses the SSE ``data:`` lines)
- ``client.audio.speech.with_streaming_response.create`` → ``POST /v1/audio/speech`` → WAV (or pcm) bytes
- ``client.models.list`` → ``GET /v1/models`` → the chat model when none is configured

Overlap: the reply is streamed, cut into sentences as they complete, and each sentence is sent to
speech synthesis while the model keeps generating; the sentences' audio is decoded to PCM, joined
and encoded once as OGG/Opus (one clean stream, not chained Ogg). ``overlap=False`` is the plain
sequential path (whole reply, then one synthesis), kept for comparison (`june bench pipeline`).

Retries (stamina) only where repeating is safe: ``GET /v1/models``, transcription and speech
synthesis (idempotent, no side effects) on transport errors and 502/503/504, with exponential
backoff and jitter, at most `retry_attempts` tries. The chat completion and streamed speech are
retried only when the connection was never made (ConnectError / ConnectTimeout): once the request
may have reached the model, a retry could double the work on a loaded server and, mid-stream, would
repeat sentences already spoken, so it fails fast instead.

A busy upstream (429, or 503 with ``Retry-After``: the request was refused before any work, so
every call, chat included, may repeat it) is waited for as long as it asks (plus up to 20 %
jitter, so a burst of clients does not come back at once), for as long as the caller's patience
lasts: the deadline set with `core.busy.patience` (the bots: the message's reply deadline), else
`max_wait` seconds. A wait that would end past it fails at once with BUSY. Once the waiting of one call adds
up to `Patience.notice_after` seconds, `Patience.on_busy` is called, once per `patience` block (the
bots tell the user that june is busy and the answer is coming).

Errors: every SDK error becomes a PipelineError naming the stage, with a message safe to show:
BUSY for 429/503, UNDECODABLE / AUDIO_TOO_BIG when transcription refuses the file (400/413/415/422),
else the stage's apology; connection refused, timeouts and broken streams likewise.

Reasoning never reaches the user, speech or history: ``delta.reasoning`` / ``reasoning_content``
are ignored and ``<think>…</think>`` blocks are cut out of the content (also mid-stream).
This module imports no bot library, so Telegram, Discord and the realtime session share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx
import numpy as np
import openai
import stamina

from core.busy import BUSY, Patience, current_patience, retry_after
from core.audio import AudioDecodeError, decode, encode
from core.text import SentenceSplitter, VisibleStream, speakable, strip_reasoning

__all__ = [
    "AUDIO_TOO_BIG",
    "DEFAULT_SYSTEM_PROMPT",
    "EmptyTranscript",
    "Message",
    "PipelineError",
    "PipelineResult",
    "Timings",
    "UNDECODABLE",
    "VoicePipeline",
]

log = logging.getLogger(__name__)

Stage = Literal["transcribe", "chat", "speak"]
Message = dict[str, str]
"""One chat message as OpenAI's API takes it: ``{"role": "user" | "assistant" | "system", "content": str}``."""

SAMPLE_RATE = 48000
"""Rate (Hz) of the joined PCM, Opus' native rate."""

DEFAULT_SYSTEM_PROMPT = (
    "You are June, a friendly voice assistant. Answer in one to three short spoken sentences, "
    "in plain words without lists, code or formatting."
)

_USER_MESSAGES: dict[Stage, str] = {
    "transcribe": "Sorry, I couldn't understand that voice message right now. Please try again in a moment.",
    "chat": "Sorry, I couldn't come up with an answer right now. Please try again in a moment.",
    "speak": "Sorry, I couldn't speak my answer right now. Please try again in a moment.",
}

UNDECODABLE = (
    "I couldn't decode that audio. Could you record it again, or send it as a voice message "
    "(or an OGG, MP3 or WAV file)?"
)
AUDIO_TOO_BIG = "That recording is too big or too long for me. Could you send a shorter one?"

Retry = Literal["never", "connect", "idempotent"]
_RETRY_STATUSES = frozenset({502, 503, 504})
_BUSY_STATUSES = frozenset({429, 503})
_MIN_BUSY_WAIT = 0.5  # seconds; a Retry-After of 0 must not become a tight loop
_T = TypeVar("_T")


class PipelineError(Exception):
    """A stage failed: the upstream answered an error status, timed out, was unreachable or sent junk.

    `stage` names the step ("transcribe", "chat", "speak"); `user_message` is safe to show to the
    person chatting (no URLs, status codes or stack traces); `str(error)` carries the detail for logs.
    """

    def __init__(self, stage: Stage, detail: str, *, user_message: str | None = None) -> None:
        super().__init__(f"{stage}: {detail}")
        self.stage: Stage = stage
        self.detail = detail
        self.user_message = user_message or _USER_MESSAGES[stage]


def _visible_reply(raw: str) -> str:
    """The model's whole answer with reasoning removed; raises PipelineError(stage="chat") when nothing is left."""
    reply = strip_reasoning(raw)
    if not reply:
        raise PipelineError("chat", "the model's answer was empty once reasoning was removed")
    return reply


class EmptyTranscript(PipelineError):
    """The voice message held no recognisable speech (the transcript was empty or blank)."""

    def __init__(self) -> None:
        super().__init__(
            "transcribe",
            "empty transcript",
            user_message="I couldn't hear anything in that voice message. Could you say it again?",
        )


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
    sent and stored in history, reasoning removed (speech gets what `core.text.speakable` keeps);
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

    The caller owns `http` (one client for the bot's life; its timeout applies to every request):
    the pipeline's `openai.AsyncOpenAI` sends through it and never closes it.
    `api_key` None sends no Authorization header (a gateway without keys; ``OPENAI_API_KEY`` is
    never read).
    `chat_model` None means the first id from ``GET /v1/models``, looked up once and cached.
    `voice` None leaves the voice to the speech service; `language` (ISO 639-1, e.g. "en") hints
    transcription, None lets it detect the language.
    `max_history_turns` bounds how many past user/assistant pairs go into each chat request.
    `retry_attempts` is the most tries of a call that failed (1 disables retries; a busy upstream's
    Retry-After is honoured within the caller's patience instead, see the module docstring);
    `max_wait` the seconds one call may spend waiting for a busy upstream outside any `patience`
    block; `temperature` None leaves sampling to the server.
    Every method raises PipelineError (EmptyTranscript for silence) and nothing else for upstream
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
        # The SDK insists on credentials; without a key its Authorization header is left out per request.
        self._client = openai.AsyncOpenAI(
            base_url=f"{base_url.rstrip('/')}/v1", api_key=api_key or "unused", http_client=http,
            timeout=http.timeout, max_retries=0,  # stamina retries (see _retrying), never the SDK
        )
        self._extra: dict[str, Any] = {} if api_key else {"extra_headers": {"Authorization": openai.omit}}
        self._chat_model = chat_model
        self.transcription_model = transcription_model
        self.speech_model = speech_model
        self.voice = voice
        self.language = language
        self.system_prompt = system_prompt
        self.max_history_turns = max_history_turns
        self.max_reply_tokens = max_reply_tokens
        self.overlap = overlap
        self.retry_attempts = max(1, retry_attempts)
        self.temperature = temperature
        self.max_wait = max_wait

    async def run_voice(self, audio: bytes, history: list[Message], *, filename: str = "voice.ogg") -> PipelineResult:
        """Answer a voice message (`audio`: any container the speech service decodes, e.g. OGG/Opus).

        `filename` tells the speech service the container (e.g. "video.mp4" for a Telegram video
        note). `history` is the chat so far (oldest first); it is read, never modified. Raises
        EmptyTranscript when nothing was said, PipelineError when a stage fails.
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
        splitter = SentenceSplitter()
        tasks: list[asyncio.Task[np.ndarray]] = []
        first: float | None = None
        shown: list[str] = []  # every visible sentence, spoken or not

        def launch(sentences: list[str]) -> None:
            nonlocal first
            for sentence in sentences:
                shown.append(sentence)
                if not speakable(sentence):
                    continue  # only code, markup, links or emoji: the speech service would refuse it
                if first is None:
                    first = time.perf_counter() - origin
                tasks.append(asyncio.create_task(self._synthesize(sentence)))

        visible = VisibleStream()
        raw: list[str] = []
        try:
            async for delta in self.stream_chat(text, history):
                raw.append(delta)
                launch(splitter.feed(visible.feed(delta)))
            launch(splitter.feed(visible.feed("", final=True)))
            launch(splitter.flush())
            reply = _visible_reply("".join(raw))
            t_chat = time.perf_counter() - start
            if " ".join(shown).split() != reply.split():
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


    async def transcribe(self, audio: bytes, *, filename: str = "voice.ogg") -> str:
        """The words in `audio`, stripped. Raises EmptyTranscript for silence, PipelineError otherwise."""
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        result = await self._call(
            "transcribe", "idempotent",
            lambda: self._client.audio.transcriptions.create(
                file=(filename, audio, mime), model=self.transcription_model,
                language=self.language or openai.omit, **self._extra,
            ),
        )  # fmt: skip
        if not isinstance(result, openai.BaseModel) or "text" not in result.model_fields_set:
            raise PipelineError("transcribe", f"unexpected response body: {str(result)[:300]!r}")
        text = result.text
        if not isinstance(text, str) or not text.strip():
            raise EmptyTranscript()
        return text.strip()

    async def chat(self, text: str, history: list[Message]) -> str:
        """The assistant's whole answer to `text` after `history`, reasoning removed; never empty.

        Raises PipelineError(stage="chat") when the model fails or answers only reasoning.
        """
        return _visible_reply("".join([delta async for delta in self.stream_chat(text, history)]))

    async def stream_chat(
        self, text: str, history: list[Message], *, reply_so_far: str = "", spent_tokens: int = 0
    ) -> AsyncIterator[str]:
        """The answer's raw content deltas as the model generates them (reasoning fields skipped,
        ``<think>`` text still in: see VisibleStream). Raises PipelineError(stage="chat").

        With `reply_so_far` (the start of an answer, e.g. a stream closed early), the model goes on
        from there, and the deltas are what follows it: vLLM's `continue_final_message` with
        `add_generation_prompt` off (https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html).
        `spent_tokens` (what `reply_so_far` cost) comes off `max_reply_tokens`.
        """
        body = await self._chat_body(text, history)
        if reply_so_far:
            body["messages"].append({"role": "assistant", "content": reply_so_far})
            body["extra_body"] = {"continue_final_message": True, "add_generation_prompt": False}
            if "max_tokens" in body:
                body["max_tokens"] = max(1, body["max_tokens"] - spent_tokens)
        stream = await self._call("chat", "connect", lambda: self._client.chat.completions.create(**body, **self._extra))
        async with stream:
            try:
                async for chunk in stream:
                    if content := _content(chunk):
                        yield content
            except openai.APIError as e:  # an error object in the stream (vLLM), or the connection broke
                raise PipelineError("chat", f"error in stream: {type(e).__name__}: {str(e)[:300]}") from e
            except httpx.HTTPError as e:
                raise PipelineError("chat", f"stream broke: {type(e).__name__}: {e}") from e
            except ValueError as e:  # a data: line that is not JSON
                raise PipelineError("chat", f"malformed stream chunk: {e}") from e

    async def speak(self, text: str) -> bytes:
        """`text` spoken as OGG/Opus bytes (what `core.text.speakable` keeps of it). Raises PipelineError."""
        samples = await self._synthesize(text)
        return await asyncio.to_thread(encode, samples, SAMPLE_RATE, "opus")

    async def stream_speech(
        self, text: str, *, response_format: Literal["pcm", "wav"] = "pcm", priority: bool = False
    ) -> AsyncIterator[bytes]:
        """`text` spoken (what `core.text.speakable` keeps of it), as the speech service streams it:
        pcm is 16-bit mono 24 kHz, in pieces of any size (a piece may end mid-sample). `priority`:
        `service_tier` "priority", for audio a listener waits for while the box has nothing else to do
        (june's speech service then uses every core).

        Retried only while no connection was made (the audio may already be playing).
        Raises PipelineError(stage="speak").
        """
        body = self._speech_body(text, response_format)
        if priority:
            body["extra_body"] = {"service_tier": "priority"}
        async with contextlib.AsyncExitStack() as stack:
            response = await self._call(
                "speak", "connect",
                lambda: stack.enter_async_context(self._client.audio.speech.with_streaming_response.create(**body)),
            )  # fmt: skip
            try:
                async for chunk in response.iter_bytes():
                    yield chunk
            except (openai.APIError, httpx.HTTPError) as e:
                raise PipelineError("speak", f"speech stream broke: {type(e).__name__}: {e}") from e

    async def chat_model(self) -> str:
        """The chat model's id: the configured one, else the first from ``GET /v1/models`` (cached)."""
        if self._chat_model is None:
            self._chat_model = (await self.models())[0]
        return self._chat_model

    async def models(self) -> list[str]:
        """Ids from ``GET /v1/models`` (at least one). Raises PipelineError(stage="chat")."""
        page = await self._call("chat", "idempotent", lambda: self._client.models.list(**self._extra))
        try:
            ids = [str(m.id) for m in page.data]
        except (AttributeError, TypeError) as e:
            raise PipelineError("chat", f"unexpected response body from GET /v1/models: {e}") from e
        if not ids:
            raise PipelineError("chat", "the gateway lists no models")
        return ids

    async def _synthesize(self, text: str) -> np.ndarray:
        """`text` spoken, as float32 PCM at SAMPLE_RATE. Raises PipelineError(stage="speak")."""
        body = self._speech_body(text, "wav")

        async def fetch() -> bytes:
            async with self._client.audio.speech.with_streaming_response.create(**body) as response:
                return await response.read()

        content = await self._call("speak", "idempotent", fetch)
        try:
            return await asyncio.to_thread(decode, content, SAMPLE_RATE)
        except AudioDecodeError as e:
            raise PipelineError("speak", f"undecodable audio {content[:16]!r}: {e}") from e

    def _speech_body(self, text: str, response_format: Literal["pcm", "wav"]) -> dict[str, Any]:
        spoken = speakable(text)
        if not spoken:
            raise PipelineError("speak", "nothing speakable in the reply")
        # voice unset: the speech service's default voice
        voice = self.voice if self.voice is not None else openai.omit
        return {"model": self.speech_model, "input": spoken, "voice": voice, "response_format": response_format, **self._extra}

    async def _chat_body(self, text: str, history: list[Message]) -> dict[str, Any]:
        keep = 2 * self.max_history_turns
        past = history[-keep:] if keep > 0 else []
        body: dict[str, Any] = {
            "model": await self.chat_model(),
            "messages": [
                {"role": "system", "content": self.system_prompt},
                *({"role": m["role"], "content": m["content"]} for m in past),
                {"role": "user", "content": text},
            ],
            "stream": True,
        }
        if self.max_reply_tokens is not None:
            body["max_tokens"] = self.max_reply_tokens
        if self.temperature is not None:
            body["temperature"] = self.temperature
        return body

    def _retrying(self, retry: Retry) -> Any:
        """stamina's retry context for one call of kind `retry` (see the module docstring).

        The backoff hook returns False (give up), True (stamina's exponential backoff) or the
        seconds a busy upstream asked for; it counts failures itself because a busy upstream's
        waits are bounded by time, not by `retry_attempts`.
        """
        given = current_patience() or Patience(time.monotonic() + self.max_wait)
        failures = 0
        waited = 0.0

        def backoff(e: Exception) -> bool | float:
            nonlocal failures, waited
            failures += 1
            if retry == "never":
                return False
            status = e.status_code if isinstance(e, openai.APIStatusError) else None
            asked = retry_after(e.response) if status in _BUSY_STATUSES else None
            if status == 429 or (status == 503 and asked is not None):
                # Refused before any work (429, or 503 saying when to come back): any call may repeat.
                wait = max(_MIN_BUSY_WAIT, asked if asked is not None else 2.0 ** min(failures, 5))
                wait *= random.uniform(1.0, 1.2)
                if wait > given.left():
                    return False  # the answer would come too late: say "busy" now, not at the deadline
                waited += wait
                if waited >= given.notice_after and not given.notified and given.on_busy is not None:
                    given.notified = True
                    given.on_busy()
                log.info("upstream busy (%s), retrying in %.1f s", status, wait)
                return wait
            if failures >= self.retry_attempts:
                return False
            if isinstance(e, openai.APIConnectionError) and isinstance(e.__cause__, (httpx.ConnectError, httpx.ConnectTimeout)):
                return True  # the request never left: safe to repeat anything
            transient = isinstance(e, openai.APIConnectionError) or status in _RETRY_STATUSES  # timeouts included
            return retry == "idempotent" and transient

        return stamina.retry_context(
            on=backoff, attempts=None, timeout=None, wait_initial=0.2, wait_max=2.0, wait_jitter=0.2
        )

    async def _call(self, stage: Stage, retry: Retry, call: Callable[[], Awaitable[_T]]) -> _T:
        """`await call()` (one SDK request), retried per `retry`; every SDK error becomes PipelineError."""
        try:
            async for attempt in self._retrying(retry):
                with attempt:
                    return await call()
        except openai.APIStatusError as e:
            raise _status_error(stage, e) from e
        except openai.APIConnectionError as e:  # APITimeoutError included
            raise _transport_error(stage, e) from e
        except openai.APIError as e:  # e.g. a 2xx body the SDK could not read
            raise PipelineError(stage, f"{_where(e.request)} failed: {type(e).__name__}: {e}") from e
        except httpx.HTTPError as e:  # the body broke off while being read
            raise PipelineError(stage, f"failed: {type(e).__name__}: {e}") from e
        raise AssertionError("unreachable: stamina either returns or raises")


def _where(request: httpx.Request) -> str:
    """``METHOD /path`` of `request`, for logs (never shown to users)."""
    return f"{request.method} {request.url.path}"


def _status_error(stage: Stage, e: openai.APIStatusError) -> PipelineError:
    """The PipelineError for an error status, with a user message that names what happened: busy
    (429/503), audio speech could not use (a 4xx from transcription), else the stage's apology."""
    response, status = e.response, e.status_code
    try:
        body = response.text[:300]
    except httpx.ResponseNotRead:
        body = str(e)[:300]
    detail = f"{_where(response.request)} answered {status}: {body}"
    if status in _BUSY_STATUSES:
        return PipelineError(stage, detail, user_message=BUSY)
    if stage == "transcribe" and status in (400, 413, 415, 422):
        # The file itself is the problem (empty, not audio, too big or too long): sending the same
        # one again would not help, so the user hears why instead of "try again in a moment".
        error = e.body if isinstance(e.body, dict) else {}
        fields = " ".join(str(error.get(k) or "") for k in ("code", "param", "message")).lower()
        too_big = status == 413 or any(w in fields for w in ("too_large", "too_long", "too long", "longer than"))
        return PipelineError(stage, detail, user_message=AUDIO_TOO_BIG if too_big else UNDECODABLE)
    return PipelineError(stage, detail)


def _transport_error(stage: Stage, e: openai.APIConnectionError) -> PipelineError:
    cause = type(e.__cause__).__name__ if e.__cause__ is not None else type(e).__name__
    if isinstance(e, openai.APITimeoutError):
        return PipelineError(stage, f"{_where(e.request)} timed out ({cause})")
    return PipelineError(stage, f"{_where(e.request)} failed: {cause}: {e.__cause__ or e}")  # refused, reset...


def _content(chunk: Any) -> str:
    """The content delta of one streamed chunk (``""`` for role-only, reasoning-only or usage chunks).

    Only ``delta.content`` is the answer: ``reasoning`` / ``reasoning_content`` are deliberately not read.
    """
    try:
        choices = chunk.choices or []
        content = choices[0].delta.content if choices else None
    except (AttributeError, TypeError, IndexError) as e:
        raise PipelineError("chat", f"malformed stream chunk: {str(chunk)[:200]!r}") from e
    return content if isinstance(content, str) else ""
