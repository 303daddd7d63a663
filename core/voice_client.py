"""An OpenAI client for the voice stages (transcription, chat streaming, speech) with june's retry,
busy and error policy. The voice pipeline (`core.voice`) and the realtime session
(`gateway.realtime_reply`) sit on top of it.

It speaks OpenAI's API through the `openai` SDK (`AsyncOpenAI`) over the caller's
`httpx.AsyncClient`, so OpenTelemetry's httpx tracing and respx in tests see every request, with
the SDK's own retries off (the policy below is june's):

- ``client.audio.transcriptions.create`` → ``POST /v1/audio/transcriptions`` → the words said (or,
  ``stream=True``, its ``transcript.text.delta`` / ``.done`` events as they are decoded)
- ``client.chat.completions.create(stream=True)`` → ``POST /v1/chat/completions``, streamed (the SDK
  parses the SSE ``data:`` lines)
- ``client.audio.speech.with_streaming_response.create`` → ``POST /v1/audio/speech`` → WAV (or pcm) bytes
- ``client.models.list`` → ``GET /v1/models`` → the chat model when none is configured

Every call is configured by its arguments (model, voice, language, limits): one client serves
callers with different settings, none of them mutates it.

Retries (`core.retry`) only where repeating is safe: ``GET /v1/models``, transcription and speech
synthesis (idempotent, no side effects) on transport errors and 502/503/504, with exponential
backoff and jitter, at most `retry_attempts` tries. The chat completion and streamed speech are
retried only when the connection was never made (ConnectError / ConnectTimeout): once the request
may have reached the model, a retry could double the work on a loaded server and, mid-stream, would
repeat sentences already spoken, so it fails fast instead.

A busy upstream (429, or 503 with ``Retry-After``: the request was refused before any work, so
every call, chat included, may repeat it) is waited for as long as it asks (plus up to 20 %
jitter, so a burst of clients does not come back at once), for as long as the caller's patience
lasts: the deadline set with `core.busy.patience` (the bots: the message's reply deadline), else
`max_wait` seconds. A wait that would end past it fails at once. Once the waiting of one call adds
up to `Patience.notice_after` seconds, `Patience.on_busy` is called, once per `patience` block (the
bots tell the user that june is busy and the answer is coming).

Errors: every SDK error becomes a `core.voice_errors.VoiceError` naming the stage, with the HTTP status and the
Retry-After the upstream sent (None when there was none) and a `reason` a caller can act on
("busy" for 429/503, "undecodable" / "audio_too_big" when transcription refuses the file
(400/413/415/422), "empty" for a transcript with no words, else "failed"). What a person is told
is the caller's choice (the bots' `bots.apologies`, the realtime session's error events).

Reasoning never comes out as content: ``delta.reasoning`` / ``reasoning_content`` are not read
(``<think>`` text inside the content is the reply core's to cut, `core.reply`).
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx
import openai

from core.busy import Patience, current_patience, retry_after
from core.retry import Classify
from core.retry import retry as retry_call
from core.served import NoServedModel, model_ids
from core.speakable import speakable
from core.voice_errors import BUSY_STATUSES, EmptyTranscript, Stage, VoiceError, status_error, transport_error, where

__all__ = ["Message", "Transcript", "VoiceClient"]

log = logging.getLogger(__name__)

Message = dict[str, str]
"""One chat message as OpenAI's API takes it: ``{"role": "user" | "assistant" | "system", "content": str}``."""


@dataclass(frozen=True)
class Transcript:
    """The end of a streamed transcription (`VoiceClient.stream_transcription`): the whole `text`."""

    text: str


Retry = Literal["never", "connect", "idempotent"]
_RETRY_STATUSES = frozenset({502, 503, 504})
_MIN_BUSY_WAIT = 0.5  # seconds; a Retry-After of 0 must not become a tight loop
_T = TypeVar("_T")


class VoiceClient:
    """The voice stages against one OpenAI-style base URL (the gateway), over `http`.

    The caller owns `http` (one client for its life; its timeout applies to every request): the
    client's `openai.AsyncOpenAI` sends through it and never closes it. `api_key` None sends no
    Authorization header (a gateway without keys; ``OPENAI_API_KEY`` is never read). `chat_model`
    None means the first id from ``GET /v1/models``, looked up once and cached. `retry_attempts` is
    the most tries of a call that failed (1 disables retries; a busy upstream's Retry-After is
    honoured within the caller's patience instead); `max_wait` the seconds one call may spend
    waiting for a busy upstream outside any `patience` block. Every method raises VoiceError
    (EmptyTranscript for silence) and nothing else for upstream trouble.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str | None = None,
        chat_model: str | None = None,
        retry_attempts: int = 3,
        max_wait: float = 120.0,
    ) -> None:
        # The SDK insists on credentials; without a key its Authorization header is left out per request.
        # openai 3.x types `http_client` as an httpx2 client and takes an httpx one too (its legacy path,
        # openai/_httpx2.py): june's httpx client carries the OpenTelemetry instrumentation and respx.
        self._client = openai.AsyncOpenAI(
            base_url=f"{base_url.rstrip('/')}/v1",
            api_key=api_key or "unused",
            http_client=http,  # type: ignore[arg-type]
            timeout=http.timeout,  # type: ignore[arg-type]
            max_retries=0,  # june's retries (see _classify), never the SDK's
        )
        self._extra: dict[str, Any] = {} if api_key else {"extra_headers": {"Authorization": openai.omit}}
        self._chat_model = chat_model
        self.retry_attempts = max(1, retry_attempts)
        self.max_wait = max_wait

    async def transcribe(
        self, audio: bytes, *, filename: str = "voice.ogg", model: str = "whisper-1", language: str | None = None
    ) -> str:
        """The words in `audio` (any container the speech service decodes; `filename` names it),
        stripped. `language` (ISO 639-1) hints Whisper, None lets it detect. Raises EmptyTranscript
        for silence, VoiceError otherwise."""
        result = await self._call("transcribe", "idempotent", self._transcription(audio, filename, model, language))
        if not isinstance(result, openai.BaseModel) or "text" not in result.model_fields_set:
            raise VoiceError("transcribe", f"unexpected response body: {str(result)[:300]!r}")
        text = getattr(result, "text", None)
        if not isinstance(text, str) or not text.strip():
            raise EmptyTranscript()
        return text.strip()

    async def stream_transcription(
        self,
        audio: bytes,
        *,
        filename: str = "voice.ogg",
        model: str = "whisper-1",
        language: str | None = None,
        prompt: str | None = None,
    ) -> AsyncIterator[str | Transcript]:
        """The words in `audio` as the speech service decodes them (`stream=true`: OpenAI's
        ``transcript.text.delta`` events, one per kept segment on june's speech service): each delta's
        text (the second and later start with a space), then the whole transcript as a `Transcript`
        (its text stripped, possibly empty: silence). `prompt` guides Whisper's spelling. The request
        is retried while nothing was read; a stream that breaks raises VoiceError(stage="transcribe").
        """
        stream = await self._call(
            "transcribe",
            "idempotent",
            self._transcription(audio, filename, model, language, prompt=prompt or openai.omit, stream=True),
        )
        async with stream:
            try:
                async for chunk in stream:
                    if chunk.type == "transcript.text.delta" and chunk.delta:
                        yield chunk.delta
                    elif chunk.type == "transcript.text.done":
                        yield Transcript(chunk.text.strip())
                        return
            except (openai.APIError, httpx.HTTPError, ValueError) as e:
                raise VoiceError("transcribe", f"transcription stream broke: {type(e).__name__}: {e}") from e
        raise VoiceError("transcribe", "the transcription stream ended without transcript.text.done")

    def _transcription(
        self, audio: bytes, filename: str, model: str, language: str | None, **fields: Any
    ) -> Callable[[], Awaitable[Any]]:
        """One POST /v1/audio/transcriptions of `audio` (its MIME type guessed from `filename`), as a
        call `_call` may repeat; `fields` are the request's other fields (prompt, stream)."""
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        return lambda: self._client.audio.transcriptions.create(
            file=(filename, audio, mime), model=model, language=language or openai.omit, **fields, **self._extra
        )

    async def stream_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        reply_so_far: str = "",
        tools: Mapping[str, Any] | None = None,
        on_tool_call: Callable[[Any], Awaitable[None]] | None = None,
    ) -> AsyncGenerator[str, None]:
        """The answer to `messages` (system prompt, history and the user's turn, oldest first): its
        raw content deltas as the model generates them (reasoning fields skipped, ``<think>`` text
        still in). `max_tokens` / `temperature` None leave them to the server.

        With `reply_so_far` (the start of an answer, e.g. a stream closed early), the model goes on
        from there, and the deltas are what follows it: vLLM's `continue_final_message` with
        `add_generation_prompt` off (https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html).
        `tools`: chat-completions `tools` / `tool_choice` fields for the request; each streamed tool-call
        delta (`choices[0].delta.tool_calls[i]`, the SDK's ChoiceDeltaToolCall) is awaited with
        `on_tool_call` as it comes, in order with the content deltas.
        Raises VoiceError(stage="chat").
        """
        body: dict[str, Any] = {"model": await self.chat_model(), "messages": list(messages), "stream": True}
        body.update(tools or {})
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if temperature is not None:
            body["temperature"] = temperature
        if reply_so_far:
            body["messages"].append({"role": "assistant", "content": reply_so_far})
            body["extra_body"] = {"continue_final_message": True, "add_generation_prompt": False}
        stream = await self._call(
            "chat", "connect", lambda: self._client.chat.completions.create(**body, **self._extra)
        )
        async with stream:
            try:
                async for chunk in stream:
                    if content := _content(chunk):
                        yield content
                    if on_tool_call is not None:
                        for call in _tool_calls(chunk):
                            await on_tool_call(call)
            except openai.APIError as e:  # an error object in the stream (vLLM), or the connection broke
                raise VoiceError("chat", f"error in stream: {type(e).__name__}: {str(e)[:300]}") from e
            except httpx.HTTPError as e:
                raise VoiceError("chat", f"stream broke: {type(e).__name__}: {e}") from e
            except ValueError as e:  # a data: line that is not JSON
                raise VoiceError("chat", f"malformed stream chunk: {e}") from e

    async def speech(self, text: str, *, model: str = "tts-1", voice: str | None = None) -> bytes:
        """`text` spoken (what `core.speakable.speakable` keeps of it) as one WAV file (16-bit mono
        24 kHz from june's speech service). `voice` None: the speech service's default. Retried as an
        idempotent call. Raises VoiceError(stage="speak")."""
        body = self._speech_body(text, model, voice, "wav")

        async def fetch() -> bytes:
            async with self._client.audio.speech.with_streaming_response.create(**body) as response:
                return await response.read()

        return await self._call("speak", "idempotent", fetch)

    async def stream_speech(
        self,
        text: str,
        *,
        model: str = "tts-1",
        voice: str | None = None,
        response_format: Literal["pcm", "wav"] = "pcm",
        priority: bool = False,
    ) -> AsyncIterator[bytes]:
        """`text` spoken (what `core.speakable.speakable` keeps of it), as the speech service streams it:
        pcm is 16-bit mono 24 kHz, in pieces of any size (a piece may end mid-sample). `priority`:
        `service_tier` "priority", for audio a listener waits for while the box has nothing else to do
        (june's speech service then uses every core).

        Retried only while no connection was made (the audio may already be playing).
        Raises VoiceError(stage="speak").
        """
        body = self._speech_body(text, model, voice, response_format)
        if priority:
            body["extra_body"] = {"service_tier": "priority"}
        async with contextlib.AsyncExitStack() as stack:
            response = await self._call(
                "speak",
                "connect",
                lambda: stack.enter_async_context(self._client.audio.speech.with_streaming_response.create(**body)),
            )
            try:
                async for chunk in response.iter_bytes():
                    yield chunk
            except (openai.APIError, httpx.HTTPError) as e:
                raise VoiceError("speak", f"speech stream broke: {type(e).__name__}: {e}") from e

    async def chat_model(self) -> str:
        """The chat model's id: the configured one, else the first from ``GET /v1/models`` (cached)."""
        if self._chat_model is None:
            self._chat_model = (await self.models())[0]
        return self._chat_model

    async def models(self) -> list[str]:
        """Ids from ``GET /v1/models`` (at least one). Raises VoiceError(stage="chat")."""
        page = await self._call("chat", "idempotent", lambda: self._client.models.list(**self._extra))
        try:
            return model_ids(page.model_dump())
        except NoServedModel as e:
            raise VoiceError("chat", str(e)) from e

    def _speech_body(self, text: str, model: str, voice: str | None, response_format: str) -> dict[str, Any]:
        spoken = speakable(text)
        if not spoken:
            raise VoiceError("speak", "nothing speakable in the reply")
        voice_field = voice if voice is not None else openai.omit  # unset: the speech service's default
        return {
            "model": model,
            "input": spoken,
            "voice": voice_field,
            "response_format": response_format,
            **self._extra,
        }

    def _classify(self, retry: Retry) -> Classify:
        """How one call of kind `retry` treats its failures (see the module docstring): give up, back
        off, or wait what a busy upstream asked for. A busy upstream's waits are bounded by the
        caller's patience (time), not by `retry_attempts`."""
        given = current_patience() or Patience(time.monotonic() + self.max_wait)
        waited = 0.0

        def classify(e: Exception, failures: int) -> bool | float:
            nonlocal waited
            if retry == "never":
                return False
            response = e.response if isinstance(e, openai.APIStatusError) else None
            status = response.status_code if response is not None else None
            asked = retry_after(response) if response is not None and status in BUSY_STATUSES else None
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
            if isinstance(e, openai.APIConnectionError) and isinstance(
                e.__cause__, (httpx.ConnectError, httpx.ConnectTimeout)
            ):
                return True  # the request never left: safe to repeat anything
            transient = isinstance(e, openai.APIConnectionError) or status in _RETRY_STATUSES  # timeouts included
            return retry == "idempotent" and transient

        return classify

    async def _call(self, stage: Stage, retry: Retry, call: Callable[[], Awaitable[_T]]) -> _T:
        """`await call()` (one SDK request), retried per `retry`; every SDK error becomes VoiceError."""
        try:
            return await retry_call(call, self._classify(retry), wait_initial=0.2, wait_max=2.0, wait_jitter=0.2)
        except openai.APIStatusError as e:
            raise status_error(stage, e) from e
        except openai.APIConnectionError as e:  # APITimeoutError included
            raise transport_error(stage, e) from e
        except openai.APIError as e:  # e.g. a 2xx body the SDK could not read
            raise VoiceError(stage, f"{where(e.request)} failed: {type(e).__name__}: {e}") from e
        except httpx.HTTPError as e:  # the body broke off while being read
            raise VoiceError(stage, f"failed: {type(e).__name__}: {e}") from e


def _content(chunk: Any) -> str:
    """The content delta of one streamed chunk (``""`` for role-only, reasoning-only or usage chunks).

    Only ``delta.content`` is the answer: ``reasoning`` / ``reasoning_content`` are deliberately not read.
    """
    try:
        choices = chunk.choices or []
        content = choices[0].delta.content if choices else None
    except (AttributeError, TypeError, IndexError) as e:
        raise VoiceError("chat", f"malformed stream chunk: {str(chunk)[:200]!r}") from e
    return content if isinstance(content, str) else ""


def _tool_calls(chunk: Any) -> list[Any]:
    """The tool-call deltas of one streamed chunk (``[]`` when it has none)."""
    choices = getattr(chunk, "choices", None) or []
    delta = getattr(choices[0], "delta", None) if choices else None
    return list(getattr(delta, "tool_calls", None) or [])
