"""The voice pipeline every bot shares: speech → text → reply → speech, over the gateway's HTTP API.

One base URL (the gateway) serves OpenAI's paths:

- ``POST /v1/audio/transcriptions`` (multipart ``file`` + ``model``) → ``{"text", "language", "duration"}``
- ``POST /v1/chat/completions`` → OpenAI chat completion
- ``POST /v1/audio/speech`` (JSON ``{"model", "input", "voice", "response_format": "opus"}``) → OGG/Opus bytes
- ``GET /v1/models`` → ``{"data": [{"id": ...}]}``

Reasoning never reaches the user, speech or history: ``message.reasoning`` /
``reasoning_content`` are ignored and ``<think>…</think>`` blocks are cut out of the content.
This module imports no bot library, so Telegram and Discord share it (and its tests).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

import httpx

log = logging.getLogger(__name__)

Stage = Literal["transcribe", "chat", "speak"]
Message = dict[str, str]
"""One chat message as OpenAI's API takes it: ``{"role": "user" | "assistant" | "system", "content": str}``."""

DEFAULT_SYSTEM_PROMPT = (
    "You are June, a friendly voice assistant. Answer in one to three short spoken sentences, "
    "in plain words without lists, code or formatting."
)

_USER_MESSAGES: dict[Stage, str] = {
    "transcribe": "Sorry, I couldn't understand that voice message right now. Please try again in a moment.",
    "chat": "Sorry, I couldn't come up with an answer right now. Please try again in a moment.",
    "speak": "Sorry, I couldn't speak my answer right now. Please try again in a moment.",
}


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
    """Seconds spent per stage (wall clock); a stage that did not run is None."""

    transcribe: float | None
    chat: float
    speak: float | None
    total: float


@dataclass(frozen=True)
class PipelineResult:
    """What one exchange produced.

    `transcript` is the user's words (the text itself for `run_text`); `reply` is the answer as
    sent and stored in history, reasoning removed (speech gets it without markdown symbols);
    `audio` is the spoken reply as OGG/Opus bytes, or None when speech was not asked for.
    """

    transcript: str
    reply: str
    audio: bytes | None
    timings: Timings


_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_MARKDOWN_SYMBOLS = re.compile(r"[*#`]+")


def strip_reasoning(content: str) -> str:
    """`content` without reasoning: ``<think>…</think>`` blocks removed, then

    - an unterminated ``<think>`` drops everything after it (the model ran out of tokens mid-thought),
    - a stray ``</think>`` drops everything before it (chat templates that open the block in the
      prompt, so only the closing tag reaches the content).
    """
    text = _THINK_BLOCK.sub("", content)
    lower = text.lower()
    if "</think>" in lower:
        text = text[lower.rindex("</think>") + len("</think>") :]
        lower = text.lower()
    if "<think>" in lower:
        text = text[: lower.index("<think>")]
    return text.strip()


def speakable(text: str) -> str:
    """`text` as speech should read it: markdown symbols (``*``, ``#``, backticks) removed, spaces collapsed."""
    return " ".join(_MARKDOWN_SYMBOLS.sub(" ", text).split())


class VoicePipeline:
    """Transcribe → chat → speak against one OpenAI-style base URL (the gateway), over `http`.

    The caller owns `http` (one client for the bot's life; its timeout applies to every request).
    `chat_model` None means the first id from ``GET /v1/models``, looked up once and cached.
    `voice` None leaves the voice to the speech service; `language` (ISO 639-1, e.g. "en") hints
    transcription, None lets it detect the language.
    `max_history_turns` bounds how many past user/assistant pairs go into each chat request.
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
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._chat_model = chat_model
        self.transcription_model = transcription_model
        self.speech_model = speech_model
        self.voice = voice
        self.language = language
        self.system_prompt = system_prompt
        self.max_history_turns = max_history_turns
        self.max_reply_tokens = max_reply_tokens

    async def run_voice(self, audio: bytes, history: list[Message]) -> PipelineResult:
        """Answer a voice message (`audio`: any container the speech service decodes, e.g. OGG/Opus).

        `history` is the chat so far (oldest first); it is read, never modified. Raises
        EmptyTranscript when nothing was said, PipelineError when a stage fails.
        """
        start = time.perf_counter()
        transcript = await self.transcribe(audio)
        t_transcribe = time.perf_counter() - start
        reply, t_chat = await self._timed_chat(transcript, history)
        t0 = time.perf_counter()
        speech = await self.speak(reply)
        t_speak = time.perf_counter() - t0
        timings = Timings(t_transcribe, t_chat, t_speak, time.perf_counter() - start)
        log.info("voice exchange: %s", timings)
        return PipelineResult(transcript, reply, speech, timings)

    async def run_text(self, text: str, history: list[Message], *, speak: bool = False) -> PipelineResult:
        """Answer a text message; with `speak`, also synthesise the reply. `history` is not modified."""
        start = time.perf_counter()
        reply, t_chat = await self._timed_chat(text, history)
        speech, t_speak = None, None
        if speak:
            t0 = time.perf_counter()
            speech = await self.speak(reply)
            t_speak = time.perf_counter() - t0
        return PipelineResult(text, reply, speech, Timings(None, t_chat, t_speak, time.perf_counter() - start))

    async def transcribe(self, audio: bytes) -> str:
        """The words in `audio`, stripped. Raises EmptyTranscript for silence, PipelineError otherwise."""
        response = await self._request(
            "transcribe",
            "POST",
            "/v1/audio/transcriptions",
            files={"file": ("voice.ogg", audio, "audio/ogg")},
            data={"model": self.transcription_model, **({"language": self.language} if self.language else {})},
        )
        text = _json_field(response, "transcribe", lambda body: body["text"])
        if not isinstance(text, str) or not text.strip():
            raise EmptyTranscript()
        return text.strip()

    async def chat(self, text: str, history: list[Message]) -> str:
        """The assistant's answer to `text` after `history`, reasoning removed; never empty.

        Raises PipelineError(stage="chat") when the model fails or answers only reasoning.
        """
        keep = 2 * self.max_history_turns
        past = history[-keep:] if keep > 0 else []
        body: dict[str, Any] = {
            "model": await self.chat_model(),
            "messages": [
                {"role": "system", "content": self.system_prompt},
                *({"role": m["role"], "content": m["content"]} for m in past),
                {"role": "user", "content": text},
            ],
        }
        if self.max_reply_tokens is not None:
            body["max_tokens"] = self.max_reply_tokens
        response = await self._request("chat", "POST", "/v1/chat/completions", json=body)
        # Only `content` is the answer: `reasoning` / `reasoning_content` are deliberately not read.
        content = _json_field(response, "chat", lambda b: b["choices"][0]["message"].get("content"))
        reply = strip_reasoning(content or "")
        if not reply:
            raise PipelineError("chat", "the model's answer was empty once reasoning was removed")
        return reply

    async def speak(self, text: str) -> bytes:
        """`text` spoken as OGG/Opus bytes (markdown symbols removed first). Raises PipelineError."""
        spoken = speakable(text)
        if not spoken:
            raise PipelineError("speak", "nothing speakable in the reply")
        body = {"model": self.speech_model, "input": spoken, "voice": self.voice, "response_format": "opus"}
        if self.voice is None:
            del body["voice"]  # the speech service's default voice
        response = await self._request("speak", "POST", "/v1/audio/speech", json=body)
        if not response.content.startswith(b"OggS"):
            raise PipelineError("speak", f"expected OGG audio, got {response.content[:16]!r}")
        return response.content

    async def chat_model(self) -> str:
        """The chat model's id: the configured one, else the first from ``GET /v1/models`` (cached)."""
        if self._chat_model is None:
            response = await self._request("chat", "GET", "/v1/models")
            self._chat_model = _json_field(response, "chat", lambda body: str(body["data"][0]["id"]))
        return self._chat_model

    async def _timed_chat(self, text: str, history: list[Message]) -> tuple[str, float]:
        start = time.perf_counter()
        reply = await self.chat(text, history)
        return reply, time.perf_counter() - start

    async def _request(self, stage: Stage, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request to the gateway; any transport error or non-2xx status becomes PipelineError."""
        url = f"{self._base_url}{path}"
        try:
            response = await self._http.request(method, url, headers=self._headers, **kwargs)
        except httpx.TimeoutException as e:
            raise PipelineError(stage, f"{method} {path} timed out ({type(e).__name__})") from e
        except httpx.HTTPError as e:  # connection refused, reset, protocol errors...
            raise PipelineError(stage, f"{method} {path} failed: {type(e).__name__}: {e}") from e
        if response.is_error:
            raise PipelineError(stage, f"{method} {path} answered {response.status_code}: {response.text[:300]}")
        return response


def _json_field(response: httpx.Response, stage: Stage, pick: Any) -> Any:
    """`pick(response.json())`, with malformed bodies reported as PipelineError for `stage`."""
    try:
        return pick(response.json())
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise PipelineError(stage, f"unexpected response body: {response.text[:300]!r}") from e
