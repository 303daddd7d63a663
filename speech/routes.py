"""HTTP handlers: parse the request, call `Engines` once, shape the response.

Each handler serves june's short path and OpenAI's path, so the official SDK works unchanged:
POST /transcribe = /v1/audio/transcriptions, POST /speak = /v1/audio/speech,
GET /voices = /v1/audio/voices, GET /health.
Errors are raised as `june.web.OpenAIError` (or engine errors mapped in `speech.app`).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import State, UploadFile

from june.web import OpenAIError
from speech.audio import CONTENT_TYPES
from speech.engines import Engines
from speech.schemas import TRANSCRIPTION_FORMATS, SpeechRequest, transcription_body
from speech.settings import SpeechSettings


def _text_field(form: Any, name: str) -> str | None:
    value = form.get(name)
    if value is None or isinstance(value, UploadFile):
        return None
    return str(value).strip() or None


@post(["/transcribe", "/v1/audio/transcriptions"], status_code=200)
async def transcribe(request: Request, state: State) -> Response:
    """Multipart `file` (+ `model`, `language`, `prompt`, `temperature`, `response_format`) → transcript.

    400 for a missing/empty file or bad field, 413 over the upload limit, 415 for undecodable audio.
    """
    settings: SpeechSettings = state.settings
    engines: Engines = state.engines
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise OpenAIError(400, "Missing audio upload: send a multipart field named 'file'.", param="file")
    data = await upload.read()
    if len(data) > settings.max_upload_bytes:
        raise OpenAIError(
            413, f"Audio file is larger than {settings.max_upload_bytes} bytes.", param="file", code="file_too_large"
        )
    if not data:
        raise OpenAIError(400, "Audio file is empty.", param="file", code="empty_file")
    fmt = _text_field(form, "response_format") or "json"
    if fmt not in TRANSCRIPTION_FORMATS:
        raise OpenAIError(
            400, f"response_format must be one of {', '.join(TRANSCRIPTION_FORMATS)}.", param="response_format"
        )
    temperature = _text_field(form, "temperature")
    try:
        temp = float(temperature) if temperature is not None else None
    except ValueError:
        temp = -1.0
    if temp is not None and not 0.0 <= temp <= 1.0:
        raise OpenAIError(400, "temperature must be a number between 0 and 1.", param="temperature")
    transcript = await engines.transcribe(
        data,
        language=_text_field(form, "language") or settings.language,
        prompt=_text_field(form, "prompt"),
        temperature=temp,
    )
    body, media_type = transcription_body(transcript, fmt)
    return Response(body, media_type=media_type)


@post(["/speak", "/v1/audio/speech"], status_code=200)
async def speak(data: SpeechRequest, state: State) -> Response:
    """JSON `{input, voice, response_format, speed, model}` → audio bytes (Content-Type per format).

    opus is OGG/Opus 48 kHz served as audio/ogg; pcm is raw s16le mono 24 kHz. 400 for empty or too
    long input, unknown voice or unspeakable text.
    """
    settings: SpeechSettings = state.settings
    if not data.input.strip():
        raise OpenAIError(400, "input must not be empty.", param="input", code="empty_input")
    if len(data.input) > settings.max_input_chars:
        raise OpenAIError(400, f"input is longer than {settings.max_input_chars} characters.", param="input")
    fmt = data.response_format
    audio = await state.engines.speak(data.input, voice=data.voice, speed=data.speed, fmt=fmt)
    return Response(audio, media_type=CONTENT_TYPES[fmt])


@get(["/voices", "/v1/audio/voices"])
async def voices(state: State) -> dict[str, Any]:
    """Native voices, OpenAI aliases (alias → native) and the default voice."""
    synth = state.engines.synthesizer
    return {
        "object": "list",
        "data": [{"id": v, "object": "voice"} for v in synth.voices],
        "aliases": dict(synth.aliases),
        "default": synth.default_voice,
    }


@get("/health")
async def health(state: State) -> dict[str, Any]:
    """200 once the models are loaded (the server only listens after the lifespan has loaded them)."""
    settings: SpeechSettings = state.settings
    return {"status": "ok", "whisper_model": settings.whisper_model, "tts_backend": settings.tts_backend}


HANDLERS = [transcribe, speak, voices, health]
