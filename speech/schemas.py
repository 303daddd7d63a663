"""Request and response shapes of the speech HTTP API (OpenAI's audio endpoints plus june's short paths).

Transcription bodies follow OpenAI's `response_format`s; "json" adds `language` and `duration` (seconds)
to OpenAI's `{"text"}` because june's bots use them. Streamed transcriptions use OpenAI's events
`{"type": "transcript.text.delta", "delta"}` … `{"type": "transcript.text.done", "text"}`; streamed
speech (stream_format="sse") `{"type": "core.audio.delta", "audio": base64}` … `{"type":
"core.audio.done", "usage"}`.
"""

from __future__ import annotations

import base64
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from speech.engines import Segment, Transcript

SpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
TranscriptionFormat = Literal["json", "text", "verbose_json", "srt", "vtt"]
TRANSCRIPTION_FORMATS: tuple[str, ...] = get_args(TranscriptionFormat)


class SpeechRequest(BaseModel):
    """Body of POST /speak and /v1/audio/speech, in OpenAI's field order; unknown fields are accepted.

    `model` may be any OpenAI TTS name (tts-1, tts-1-hd, gpt-4o-mini-tts) or anything else: the
    configured Kokoro backend answers all. `voice` None means the configured default.
    """

    model_config = ConfigDict(extra="allow")

    model: str = Field(default="tts-1", max_length=256)
    input: str = Field(min_length=1)
    voice: str | None = Field(default=None, max_length=256)
    instructions: str | None = Field(default=None, max_length=4096)
    response_format: SpeechFormat = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    stream_format: Literal["audio", "sse"] = "audio"
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] = "auto"
    """OpenAI's processing tier (a chat completions field, taken here for speech): "priority" asks for
    the first audio soonest, and the onnx backend then synthesizes on one thread per core instead of
    `tts_threads`. For a caller that knows the box is otherwise idle, e.g. june's realtime session,
    which holds its LLM back while a reply's first clause is spoken; the others are all alike."""


def _timestamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _segment(s: Segment) -> dict[str, Any]:
    # OpenAI's verbose_json segment fields (TranscriptionSegment), in its order.
    return {
        "id": s.id, "seek": s.seek, "start": s.start, "end": s.end, "text": s.text, "tokens": list(s.tokens),
        "temperature": s.temperature, "avg_logprob": s.avg_logprob, "compression_ratio": s.compression_ratio,
        "no_speech_prob": s.no_speech_prob,
    }  # fmt: skip


def transcription_body(
    t: Transcript, fmt: str, *, granularities: frozenset[str] = frozenset({"segment"})
) -> tuple[Any, str]:
    """The response body and media type for transcript `t` in OpenAI `response_format` `fmt`.

    verbose_json carries `segments` when "segment" is in `granularities` and `words` (start/end in
    seconds) when "word" is.
    """
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
        body = {"task": t.task, "language": t.language, "duration": t.duration, "text": t.text}
        if "segment" in granularities:
            body["segments"] = [_segment(s) for s in t.segments]
        if "word" in granularities:
            body["words"] = [{"word": w.word, "start": w.start, "end": w.end} for s in t.segments for w in s.words]
        body["usage"] = {"type": "duration", "seconds": t.duration}
    return body, "application/json"


def delta_event(text: str) -> dict[str, Any]:
    """OpenAI's transcript.text.delta event for newly decoded `text`."""
    return {"type": "transcript.text.delta", "delta": text}


def done_event(t: Transcript) -> dict[str, Any]:
    """OpenAI's transcript.text.done event, plus june's `language` and `duration` (seconds)."""
    return {
        "type": "transcript.text.done", "text": t.text, "language": t.language, "duration": t.duration,
        "usage": {"type": "duration", "seconds": t.duration},
    }  # fmt: skip


def speech_delta_event(chunk: bytes) -> dict[str, Any]:
    """OpenAI's core.audio.delta event: `audio` is base64 of the next bytes of the audio file."""
    return {"type": "core.audio.delta", "audio": base64.b64encode(chunk).decode("ascii")}


def speech_done_event(input_chars: int) -> dict[str, Any]:
    """OpenAI's core.audio.done event. Kokoro has no token billing: input_tokens counts characters."""
    return {
        "type": "core.audio.done",
        "usage": {"input_tokens": input_chars, "output_tokens": 0, "total_tokens": input_chars},
    }
