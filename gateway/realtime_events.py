"""The Realtime API's (GA) wire shapes that /v1/realtime sends: event builders and session config.

Shapes follow the `openai` SDK's types (openai/types/realtime/*): `session.created` carries a
`RealtimeSessionCreateRequest`-like session, responses are `RealtimeResponse` objects, errors are
`{"type": "error", "event_id", "error": {"type", "code", "message", "param", "event_id"}}`.
Pure functions and a dataclass; no I/O.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

INPUT_RATE = 24000
"""Sample rate (Hz) of the pcm16 the realtime API carries."""


@dataclass
class VadOptions:
    """OpenAI's server_vad knobs (session.audio.input.turn_detection)."""

    threshold: float = 0.5
    """Speech probability at or above which a frame is speech."""
    prefix_padding_ms: int = 300
    """Audio kept before the detected start (part of the committed turn)."""
    silence_duration_ms: int = 500
    """Silence that ends a turn."""


def new_id(prefix: str) -> str:
    """An id like OpenAI's: `prefix` + "_" + 20 hex digits (event, item, resp, sess)."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def event(type_: str, **fields: Any) -> dict[str, Any]:
    """A server event: {"type", "event_id", **fields}."""
    return {"type": type_, "event_id": new_id("event"), **fields}


def error_event(
    message: str,
    *,
    code: str,
    param: str | None = None,
    client_event_id: str | None = None,
    type_: str = "invalid_request_error",
) -> dict[str, Any]:
    """An `error` server event; `client_event_id` names the client event that caused it."""
    return event(
        "error", error={"type": type_, "code": code, "message": message, "param": param, "event_id": client_event_id}
    )


class BadEvent(Exception):
    """A client event the session cannot apply: becomes an `error` event, the socket stays open."""

    def __init__(self, message: str, *, code: str = "invalid_value", param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.param = message, code, param


@dataclass
class SessionConfig:
    """What `session.update` may change (GA nesting, beta's flat fields accepted too)."""

    model: str
    instructions: str
    voice: str | None = None
    output_modalities: list[str] = field(default_factory=lambda: ["audio"])
    vad: VadOptions | None = field(default_factory=VadOptions)
    """None: turn detection off (the client commits and asks for responses itself)."""
    create_response: bool = True
    interrupt_response: bool = True
    transcription_model: str = "whisper-1"
    language: str | None = None
    transcription_prompt: str | None = None
    """Guides the transcription's spelling (Whisper's `prompt`)."""
    type: str = "realtime"
    """"realtime" (a conversation) or "transcription" (captions only, no responses: gateway.realtime_transcription)."""
    max_output_tokens: int | None = None

    def apply(self, session: Any) -> None:
        """Apply a `session.update`'s `session` object. Raises BadEvent for wrong types or values."""
        if not isinstance(session, dict):
            raise BadEvent("session must be an object.", param="session")
        audio = _obj(session.get("audio"), "session.audio")
        audio_in = _obj(audio.get("input"), "session.audio.input")
        audio_out = _obj(audio.get("output"), "session.audio.output")
        if "instructions" in session:
            self.instructions = _str(session["instructions"], "session.instructions", limit=20000)
        voice = audio_out.get("voice", session.get("voice"))
        if voice is not None:
            self.voice = _str(voice, "session.audio.output.voice", limit=64)
        if "output_modalities" in session or "modalities" in session:
            modes = session.get("output_modalities", session.get("modalities"))
            if not isinstance(modes, list) or not modes or not set(modes) <= {"audio", "text"}:
                raise BadEvent("output_modalities must be ['audio'] or ['text'].", param="session.output_modalities")
            self.output_modalities = ["audio"] if "audio" in modes else ["text"]
        for fmt in (audio_in.get("format"), audio_out.get("format")):
            if isinstance(fmt, dict) and (
                fmt.get("type") not in (None, "audio/pcm") or fmt.get("rate", INPUT_RATE) != INPUT_RATE
            ):
                raise BadEvent(
                    "Only audio/pcm at 24000 Hz is supported.", param="session.audio.format", code="unsupported_format"
                )
        noise = audio_in.get("noise_reduction", session.get("input_audio_noise_reduction"))
        if noise is not None:
            raise BadEvent(
                "noise_reduction is not supported; send null (or leave it out).",
                param="session.audio.input.noise_reduction",
                code="unsupported_value",
            )
        if session.get("prompt") is not None:
            raise BadEvent("Stored prompts are not supported; send instructions.", param="session.prompt")
        if "turn_detection" in audio_in or "turn_detection" in session:
            self._turn_detection(audio_in.get("turn_detection", session.get("turn_detection")))
        transcription = audio_in.get("transcription", session.get("input_audio_transcription"))
        if isinstance(transcription, dict):
            if transcription.get("model"):
                self.transcription_model = _str(
                    transcription["model"], "session.audio.input.transcription.model", limit=64
                )
            if "language" in transcription:
                language = transcription["language"]
                self.language = (
                    _str(language, "session.audio.input.transcription.language", limit=8) if language else None
                )
            if "prompt" in transcription:
                prompt = transcription["prompt"]
                self.transcription_prompt = (
                    _str(prompt, "session.audio.input.transcription.prompt", limit=2000) if prompt else None
                )
            if (
                self.language
                and not self.language.lower().startswith("en")
                and self.transcription_model.endswith(".en")
            ):
                self.transcription_model = "whisper-1"  # an English-only model cannot hear other languages
        if "max_output_tokens" in session or "max_response_output_tokens" in session:
            limit = session.get("max_output_tokens", session.get("max_response_output_tokens"))
            if limit == "inf" or limit is None:
                self.max_output_tokens = None
            elif isinstance(limit, int) and not isinstance(limit, bool) and 1 <= limit <= 4096:
                self.max_output_tokens = limit
            else:
                raise BadEvent("max_output_tokens must be 1..4096 or 'inf'.", param="session.max_output_tokens")

    def _turn_detection(self, value: Any) -> None:
        if value is None:
            self.vad = None
            return
        if not isinstance(value, dict) or value.get("type", "server_vad") not in ("server_vad", "semantic_vad"):
            raise BadEvent(
                "turn_detection.type must be 'server_vad' or 'semantic_vad' (or turn_detection null).",
                param="session.audio.input.turn_detection",
            )
        if value.get("type") == "semantic_vad":
            # A documented fallback (docs/realtime-protocol.md): june has no end-of-turn model, so semantic_vad
            # (the Agents SDK's and LiveKit's default) runs as server_vad with its defaults, and the session
            # echoes what runs. Refusing it would refuse those clients' first session.update whole, tools included.
            value = {k: v for k, v in value.items() if k in ("create_response", "interrupt_response")}
            self.vad = None
        vad = self.vad or VadOptions()
        if "threshold" in value:
            vad.threshold = _number(value["threshold"], "threshold", 0.0, 1.0)
        if "prefix_padding_ms" in value:
            vad.prefix_padding_ms = int(_number(value["prefix_padding_ms"], "prefix_padding_ms", 0, 5000))
        if "silence_duration_ms" in value:
            vad.silence_duration_ms = int(_number(value["silence_duration_ms"], "silence_duration_ms", 50, 10000))
        self.create_response = bool(value.get("create_response", self.create_response))
        self.interrupt_response = bool(value.get("interrupt_response", self.interrupt_response))
        self.vad = vad

    def wire(self, session_id: str) -> dict[str, Any]:
        """The session object as `session.created` / `session.updated` carry it."""
        pcm = {"type": "audio/pcm", "rate": INPUT_RATE}
        turn = None
        if self.vad is not None:
            turn = {
                "type": "server_vad",
                "threshold": self.vad.threshold,
                "prefix_padding_ms": self.vad.prefix_padding_ms,
                "silence_duration_ms": self.vad.silence_duration_ms,
                "create_response": self.create_response,
                "interrupt_response": self.interrupt_response,
                "idle_timeout_ms": None,
            }
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": session_id,
            "model": self.model,
            "output_modalities": self.output_modalities,
            "instructions": self.instructions,
            "audio": {
                "input": {
                    "format": pcm,
                    "transcription": {
                        "model": self.transcription_model,
                        "language": self.language,
                        "prompt": self.transcription_prompt,
                    },
                    "turn_detection": turn,
                    "noise_reduction": None,
                },
                "output": {"format": pcm, "voice": self.voice, "speed": 1.0},
            },
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": self.max_output_tokens or "inf",
        }


def user_item(item_id: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    """A completed user message item."""
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": content,
    }


def assistant_item(item_id: str, transcript: str, *, status: str, audio: bool) -> dict[str, Any]:
    """An assistant message item with one output_audio (or output_text) part."""
    part = {"type": "output_audio", "transcript": transcript} if audio else {"type": "output_text", "text": transcript}
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [part] if transcript or status != "in_progress" else [],
    }


def response_object(
    response_id: str,
    config: SessionConfig,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    reason: str | None = None,
    metadata: dict[str, str] | None = None,
    conversation_id: str | None = "conv_default",
) -> dict[str, Any]:
    """A `realtime.response` as response.created / response.done carry it (`metadata` as response.create
    gave it; `conversation_id` None for an out-of-band response)."""
    details: dict[str, Any] | None = None
    if status == "cancelled":
        details = {"type": "cancelled", "reason": reason or "client_cancelled"}
    elif status == "incomplete":
        details = {"type": "incomplete", "reason": reason or "max_output_tokens"}
    elif status == "failed":
        details = {"type": "failed", "error": {"type": "server_error", "code": reason}}
    return {
        "object": "realtime.response",
        "id": response_id,
        "status": status,
        "status_details": details,
        "output": output,
        "conversation_id": conversation_id,
        "output_modalities": config.output_modalities,
        "max_output_tokens": config.max_output_tokens or "inf",
        "audio": {"output": {"format": {"type": "audio/pcm", "rate": INPUT_RATE}, "voice": config.voice}},
        "usage": usage,
        "metadata": metadata,
    }


def usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """A RealtimeResponseUsage (text tokens only: june's model reads text, speech is separate)."""
    return {
        "total_tokens": input_tokens + output_tokens,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_token_details": {"text_tokens": input_tokens, "audio_tokens": 0, "cached_tokens": 0},
        "output_token_details": {"text_tokens": output_tokens, "audio_tokens": 0},
    }


def _obj(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadEvent(f"{name} must be an object.", param=name)
    return value


def _str(value: Any, name: str, *, limit: int) -> str:
    if not isinstance(value, str):
        raise BadEvent(f"{name} must be a string.", param=name)
    if len(value) > limit:
        raise BadEvent(f"{name} is longer than {limit} characters.", param=name, code="string_above_max_length")
    return value


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise BadEvent(
            f"turn_detection.{name} must be a number in [{low}, {high}].",
            param=f"session.audio.input.turn_detection.{name}",
        )
    return float(value)
