"""Request and response shapes of the speech HTTP API (OpenAI's audio endpoints plus june's short paths).

Transcription bodies follow OpenAI's `response_format`s; "json" adds `language` and `duration` (seconds)
to OpenAI's `{"text"}` because june's bots use them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from speech.engines import Transcript

SpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
TranscriptionFormat = Literal["json", "text", "verbose_json", "srt", "vtt"]
TRANSCRIPTION_FORMATS: tuple[str, ...] = TranscriptionFormat.__args__  # type: ignore[attr-defined]


class SpeechRequest(BaseModel):
    """Body of POST /speak and /v1/audio/speech, in OpenAI's field order; unknown fields are accepted.

    `model` may be any OpenAI TTS name (tts-1, tts-1-hd, gpt-4o-mini-tts) or anything else: the
    configured Kokoro backend answers all. `voice` None means the configured default.
    """

    model_config = ConfigDict(extra="allow")

    model: str = "tts-1"
    input: str = Field(min_length=1)
    voice: str | None = None
    instructions: str | None = None
    response_format: SpeechFormat = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)


def _timestamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def transcription_body(t: Transcript, fmt: str) -> tuple[Any, str]:
    """The response body and media type for transcript `t` in OpenAI `response_format` `fmt`."""
    if fmt == "text":
        return t.text, "text/plain; charset=utf-8"
    if fmt == "srt":
        blocks = [
            f"{i}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{s.text}\n"
            for i, s in enumerate(t.segments, 1)
        ]
        return "\n".join(blocks), "text/plain; charset=utf-8"
    if fmt == "vtt":
        blocks = [f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{s.text}\n" for s in t.segments]
        return "WEBVTT\n\n" + "\n".join(blocks), "text/vtt; charset=utf-8"
    body: dict[str, Any] = {"text": t.text, "language": t.language, "duration": t.duration}
    if fmt == "verbose_json":
        body = {
            "task": "transcribe",
            **body,
            "segments": [{"id": s.id, "start": s.start, "end": s.end, "text": s.text} for s in t.segments],
        }
    return body, "application/json"
