"""Transcription sessions of /v1/realtime (OpenAI's GA `session.type: "transcription"`): live captions,
audio in and `conversation.item.input_audio_transcription.delta` / `.completed` out, never a response.

A client opens one with `wss://…/v1/realtime?intent=transcription` (no model; the SDK:
`client.realtime.connect(extra_query={"intent": "transcription"})`), then sends
`session.update {session: {type: "transcription", audio: {input: {format, transcription: {model,
language, prompt}, turn_detection: server_vad | null, noise_reduction: null}}, include}}`
(https://platform.openai.com/docs/guides/realtime-transcription). june also lets a session that has
not started a conversation yet (no item, no response) switch type with `session.update`; OpenAI
refuses that on a `?model=` URL.

This module checks what such a `session.update` may hold (`check_update`: a field only a
conversation has, or one june does not support, is an `error` naming it) and builds the session
object (`wire`). The turns themselves are `gateway.realtime_input`'s, as in a conversation, with
responses off. Pure functions; no I/O.
"""

from __future__ import annotations

from typing import Any

from gateway.realtime_events import BadEvent, SessionConfig

SESSION_TYPES = ("realtime", "transcription")

_SESSION_FIELDS = frozenset({"type", "audio", "include"})
_INPUT_FIELDS = frozenset({"format", "transcription", "turn_detection", "noise_reduction"})
_TRANSCRIPTION_FIELDS = frozenset({"model", "language", "prompt"})


def session_type(session: Any, current: str) -> str:
    """The type a `session.update`'s `session` asks for (`current` when it names none).
    Raises BadEvent for one that is neither "realtime" nor "transcription"."""
    kind = session.get("type", current) if isinstance(session, dict) else current
    if kind not in SESSION_TYPES:
        raise BadEvent(
            f"Invalid value: '{str(kind)[:64]}'. Supported values are: 'realtime' and 'transcription'.",
            param="session.type",
        )
    return str(kind)


def check_update(session: Any) -> None:
    """Refuse what a transcription session's `session.update` may not hold: fields of a conversation
    (instructions, tools, audio.output, …: `unknown_parameter`), noise reduction, logprobs and the
    newer models' transcription options (`unsupported_value`), each naming the parameter. What is
    left is applied by `SessionConfig.apply`, which checks its types and values."""
    if not isinstance(session, dict):
        raise BadEvent("session must be an object.", param="session")
    _known(session, _SESSION_FIELDS, "session")
    include = session.get("include")
    if include not in (None, []):
        raise BadEvent(
            "include is not supported: june's transcription has no logprobs.",
            param="session.include",
            code="unsupported_value",
        )
    audio = session.get("audio")
    if audio is None:
        return
    if not isinstance(audio, dict):
        raise BadEvent("session.audio must be an object.", param="session.audio")
    _known(audio, frozenset({"input"}), "session.audio")
    audio_in = audio.get("input")
    if audio_in is None:
        return
    if not isinstance(audio_in, dict):
        raise BadEvent("session.audio.input must be an object.", param="session.audio.input")
    _known(audio_in, _INPUT_FIELDS, "session.audio.input")
    if audio_in.get("noise_reduction") is not None:
        raise BadEvent(
            "noise_reduction is not supported (set it to null).",
            param="session.audio.input.noise_reduction",
            code="unsupported_value",
        )
    transcription = audio_in.get("transcription")
    if transcription is not None and not isinstance(transcription, dict):
        raise BadEvent(
            "session.audio.input.transcription must be an object.", param="session.audio.input.transcription"
        )
    if transcription:
        _known(transcription, _TRANSCRIPTION_FIELDS, "session.audio.input.transcription")


def wire(config: SessionConfig, session_id: str) -> dict[str, Any]:
    """A transcription session as `session.created` / `session.updated` carry it (the SDK's
    `RealtimeTranscriptionSessionCreateRequest`, with its id and object)."""
    return {
        "type": "transcription",
        "object": "realtime.transcription_session",
        "id": session_id,
        "audio": {"input": config.wire(session_id)["audio"]["input"]},
        "include": None,
    }


def _known(value: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise BadEvent(
            f"Unknown parameter: '{where}.{unknown[0][:64]}' (not part of a transcription session).",
            param=f"{where}.{unknown[0][:64]}",
            code="unknown_parameter",
        )
