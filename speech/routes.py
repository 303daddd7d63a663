"""HTTP handlers: parse the request, call `Engines`, shape the response.

Each handler serves june's short path and OpenAI's path, so the official SDK works unchanged:
POST /transcribe = /v1/audio/transcriptions, POST /v1/audio/translations, POST /speak =
/v1/audio/speech, GET /voices = /v1/audio/voices, GET /v1/models, GET /health, GET /ready.
Errors are raised as `core.web.OpenAIError` (or engine errors mapped in `speech.app`).
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import anyio
from litestar import Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State, UploadFile
from litestar.response import ServerSentEvent, Stream
from pydantic import ValidationError

from core.audio import CONTENT_TYPES
from core.disconnect import ClientGone, DisconnectWatch
from core.priority import HEADER
from core.web import OpenAIError, header_class
from speech.engines import EngineInputError, Segment, TranscribeOptions, Transcript
from speech.runtime import Engines
from speech.scheduler import FINISHING, Ticket
from speech.schemas import (
    TRANSCRIPTION_FORMATS,
    SpeechRequest,
    delta_event,
    done_event,
    speech_delta_event,
    speech_done_event,
    transcription_body,
)
from speech.settings import SpeechSettings

_GRANULARITIES = frozenset({"segment", "word"})


@contextlib.asynccontextmanager
async def _cancelled_if_client_leaves(request: Request, ticket: Ticket) -> AsyncIterator[None]:
    """Run the body until the client disconnects, then cancel it, abandon `ticket` and raise ClientGone.

    Cancelled while waiting for a model slot, the request leaves the queue; while running, it stops
    after the model call in progress (see speech.scheduler). Once a response has started streaming,
    Litestar's streaming response cancels it on disconnect instead.
    """
    with DisconnectWatch(request.receive) as watch:  # the body has been read: only a disconnect is left to come
        yield
    if watch.gone:
        ticket.abandon()
        raise ClientGone


def _text_field(form: Any, name: str) -> str | None:
    value = form.get(name)
    if value is None or isinstance(value, UploadFile):
        return None
    return str(value).strip() or None


def _float_field(form: Any, name: str, low: float, high: float) -> float | None:
    raw = _text_field(form, name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # also rejects NaN
        raise OpenAIError(400, f"{name} must be a number between {low:g} and {high:g}.", param=name)
    return value


def _undecodable_text_field(body: bytes, content_type: str) -> str | None:
    """The name of the first multipart part without a filename whose bytes are not UTF-8 (the
    stdlib's MIME parser: the form parser has already failed on it)."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    for part in message.iter_parts():
        if part.get_filename() is None and (name := part.get_param("name", header="content-disposition")):
            payload = part.get_payload(decode=True)
            try:
                if isinstance(payload, bytes):
                    payload.decode("utf-8")
            except UnicodeDecodeError:
                return str(name)
    return None


async def _form(request: Request) -> Any:
    """The multipart form; 400 naming the field when a text field is not UTF-8 (e.g. `curl -F
    'file=<clip.wav'`, which sends the audio as text instead of as a file)."""
    body = await request.body()  # kept, so the form parser and the check below read the same bytes
    try:
        return await request.form()
    except UnicodeDecodeError as e:
        name = _undecodable_text_field(body, request.headers.get("content-type", ""))
        if name == "file":
            message = "file must be sent as a file upload (a part with a filename), e.g. curl -F 'file=@clip.wav'."
        else:
            message = f"{name or 'A text field'} must be UTF-8 text."
        raise OpenAIError(400, message, param=name, code="invalid_encoding") from e


def _speech_request(body: bytes) -> SpeechRequest:
    """The JSON `body` as a SpeechRequest; 400 naming the field for invalid JSON (bad UTF-8, nesting
    past pydantic's recursion limit, numbers out of range) or values."""
    try:
        return SpeechRequest.model_validate_json(body)
    except ValidationError as e:
        error = e.errors(include_url=False)[0]
        param = ".".join(str(p) for p in error["loc"]) or None
        raise OpenAIError(400, f"{param or 'body'}: {error['msg']}", param=param, code="invalid_value") from e


async def _transcription(request: Request, state: State, task: str) -> Response:
    settings: SpeechSettings = state.settings
    engines: Engines = state.engines
    cls = header_class(request.headers.get(HEADER))  # 400 for an unknown class
    form = await _form(request)
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
    granularities = frozenset(
        str(v).strip() for key in ("timestamp_granularities[]", "timestamp_granularities") for v in form.getall(key, [])
    ) or frozenset({"segment"})
    if not granularities <= _GRANULARITIES:
        raise OpenAIError(
            400, "timestamp_granularities must be 'segment' and/or 'word'.", param="timestamp_granularities"
        )
    if "word" in granularities and fmt != "verbose_json":
        raise OpenAIError(
            400, "timestamp_granularities requires response_format 'verbose_json'.", param="timestamp_granularities"
        )
    stream = (_text_field(form, "stream") or "false").lower()
    if stream not in ("true", "false", "1", "0"):
        raise OpenAIError(400, "stream must be true or false.", param="stream")
    options = TranscribeOptions(
        model=_text_field(form, "model"),
        language=None if task == "translate" else (_text_field(form, "language") or settings.language),
        prompt=_text_field(form, "prompt"),
        temperature=_float_field(form, "temperature", 0.0, 1.0),
        task="translate" if task == "translate" else "transcribe",
        word_timestamps="word" in granularities,
    )
    ticket = engines.admit(cls)
    if stream in ("true", "1"):
        try:
            items = engines.transcribe_stream(data, options, ticket)
            async with _cancelled_if_client_leaves(request, ticket):
                first = await anext(items)  # bad audio / options fail here, before any byte is sent
        except BaseException:
            await items.aclose()
            ticket.release()
            raise
        events = _transcript_events(first, items, ticket)
        return ServerSentEvent(events, background=BackgroundTask(_finish, items, ticket))
    with ticket:
        async with _cancelled_if_client_leaves(request, ticket):
            transcript = await engines.transcribe(data, options, ticket)
    body, media_type = transcription_body(transcript, fmt, granularities=granularities)
    return Response(body, media_type=media_type)


async def _transcript_events(
    first: Segment | Transcript, rest: AsyncGenerator[Segment | Transcript], ticket: Ticket
) -> AsyncIterator[str]:
    """OpenAI's transcript.text.delta per kept segment, then transcript.text.done (JSON strings)."""
    try:
        item: Segment | Transcript = first
        while True:
            if isinstance(item, Transcript):
                yield json.dumps(done_event(item))
                return
            yield json.dumps(delta_event(item.text if item.id == 0 else " " + item.text))
            item = await anext(rest)
    except anyio.get_cancelled_exc_class():
        ticket.abandon()  # Litestar cancels a stream whose client disconnected
        raise
    finally:
        await rest.aclose()  # ends the model's use now, not when the generator is garbage collected
        ticket.release()


@post(["/transcribe", "/v1/audio/transcriptions"], status_code=200)
async def transcribe(request: Request, state: State) -> Response:
    """Multipart `file` (+ `model`, `language`, `prompt`, `temperature`, `response_format`,
    `timestamp_granularities[]`, `stream`) → transcript in the asked format, or SSE events. The
    X-June-Class header (live, interactive, batch; none: interactive) orders it in the queue.

    400 for a missing/empty file or bad field or class (param names it), 413 over the upload limit,
    415 for undecodable audio, 503 + Retry-After when the queue of its class is full.
    """
    return await _transcription(request, state, "transcribe")


@post("/v1/audio/translations", status_code=200)
async def translate(request: Request, state: State) -> Response:
    """As `transcribe`, but the text is English whatever the spoken language (Whisper's translate task)."""
    return await _transcription(request, state, "translate")


@post(["/speak", "/v1/audio/speech"], status_code=200)
async def speak(request: Request, state: State) -> Response:
    """JSON `{model, input, voice, instructions, response_format, speed, stream_format, service_tier}` → audio.

    The text is cut into sentences and each is sent as soon as it is synthesized: chunked audio
    (stream_format "audio"; the chunks form one file: see audio.StreamEncoder) or SSE events
    (stream_format "sse"). opus is OGG/Opus 48 kHz served as audio/ogg; pcm is raw s16le mono 24 kHz.
    The X-June-Class header orders it in the queue, as for `transcribe`.
    400 for empty or too long input, unknown voice, unspeakable text or a bad class; 503 when the
    queue of its class is full.
    """
    settings: SpeechSettings = state.settings
    engines: Engines = state.engines
    cls = header_class(request.headers.get(HEADER))  # 400 for an unknown class
    data = _speech_request(await request.body())
    if not data.input.strip():
        raise OpenAIError(400, "input must not be empty.", param="input", code="empty_input")
    if len(data.input) > settings.max_input_chars:
        raise OpenAIError(400, f"input is longer than {settings.max_input_chars} characters.", param="input")
    fmt = data.response_format
    ticket = engines.admit(cls, FINISHING)  # a voice reply's last stage goes before new transcriptions
    chunks: AsyncGenerator[bytes] | None = None
    try:
        async with _cancelled_if_client_leaves(request, ticket):
            synth, mix, pieces = await engines.plan_speech(data.input, data.voice, data.speed)
            chunks = engines.speak_stream(
                synth, mix, pieces, speed=data.speed, fmt=fmt, ticket=ticket, all_cores=data.service_tier == "priority"
            )
            first = await anext(chunks, None)  # an unspeakable first sentence is a 400, not a broken stream
            if first is None:
                raise EngineInputError("input produced no audio.", param="input")
    except BaseException:
        if chunks is not None:
            await chunks.aclose()
        ticket.release()
        raise
    release = BackgroundTask(_finish, chunks, ticket)
    if data.stream_format == "sse":
        return ServerSentEvent(_speech_events(first, chunks, len(data.input), ticket), background=release)
    return Stream(_audio(first, chunks, ticket), media_type=CONTENT_TYPES[fmt], background=release)


async def _finish(work: AsyncGenerator[Any], ticket: Ticket) -> None:
    """After a streamed response, however it ended: close the engine's generator here, in order,
    and free the slot. A client that leaves before the body starts cancels the stream before its
    iterator runs, and the generator would otherwise be closed by the garbage collector, after
    PyAV had freed its encoder ("graph is unallocated", "Task exception was never retrieved")."""
    await work.aclose()
    ticket.release()


async def _audio(first: bytes, rest: AsyncGenerator[bytes], ticket: Ticket) -> AsyncIterator[bytes]:
    try:
        yield first
        async for chunk in rest:
            yield chunk
    except anyio.get_cancelled_exc_class():
        ticket.abandon()
        raise
    finally:
        await rest.aclose()  # frees the encoder now, in this task, not from a garbage-collection hook
        ticket.release()


async def _speech_events(first: bytes, rest: AsyncGenerator[bytes], chars: int, ticket: Ticket) -> AsyncIterator[str]:
    try:
        yield json.dumps(speech_delta_event(first))
        async for chunk in rest:
            yield json.dumps(speech_delta_event(chunk))
        yield json.dumps(speech_done_event(chars))
    except anyio.get_cancelled_exc_class():
        ticket.abandon()
        raise
    finally:
        await rest.aclose()
        ticket.release()


@get(["/voices", "/v1/audio/voices"])
async def voices(state: State) -> dict[str, Any]:
    """The installed voices, each with its `engine` and `language` (BCP 47), the OpenAI names (alias
    → voice), the default voice and whether voices can be mixed ("a(2)+b(1)", Kokoro only)."""
    synth = await state.engines.synthesizer()
    return {
        "object": "list",
        "data": [
            {"id": v, "object": "voice", "engine": synth.engine, "language": synth.languages.get(v)}
            for v in synth.voices
        ],
        "aliases": dict(synth.aliases),
        "default": synth.default_voice,
        "engine": synth.engine,
        "mixes": synth.can_mix,
    }


@get("/v1/models")
async def models(state: State) -> dict[str, Any]:
    """Configured models (OpenAI list shape) with june's `task`, `loaded` and `default` fields."""
    engines: Engines = state.engines
    stt = [
        {"id": n, "object": "model", "owned_by": "june", "task": "transcription",
         "loaded": engines.transcribers.loaded(n), "default": n == engines.default_model}
        for n in engines.transcribers.names
    ]  # fmt: skip
    tts = [
        {"id": n, "object": "model", "owned_by": "june", "task": "speech",
         "loaded": engines.synthesizers.loaded(n), "default": True}
        for n in engines.synthesizers.names
    ]  # fmt: skip
    return {"object": "list", "data": stt + tts}


@get("/health")
async def health(state: State) -> dict[str, Any]:
    """200 while the process serves HTTP (models may still be loading: see /ready); `slots` is how
    many requests are served at once."""
    settings: SpeechSettings = state.settings
    return {
        "status": "ok", "whisper_model": settings.whisper_model, "tts_engine": settings.engine,
        "tts_backend": settings.tts_backend,
        "slots": state.engines.scheduler.slots, "live_slots": state.engines.scheduler.live_slots,
    }  # fmt: skip


@get("/ready")
async def ready(state: State) -> Response:
    """200 once the preloaded models are in memory, else 503: code "loading" while they load,
    "preload_failed" (message: which model and why) when one failed and the service is stopping."""
    engines: Engines = state.engines
    if failures := engines.preload_failures:
        reasons = "; ".join(f"{name}: {why}" for name, why in failures.items())
        raise OpenAIError(503, f"Preloading failed, the service is stopping: {reasons}", code="preload_failed")
    preloads = engines.preloads()
    if waiting := [n for r, n in preloads if not r.loaded(n)]:
        raise OpenAIError(503, f"Loading models: {', '.join(waiting)}.", code="loading", headers={"Retry-After": "1"})
    return Response({"status": "ready", "models": [n for _, n in preloads]})


HANDLERS = [transcribe, translate, speak, voices, models, health, ready]
