"""`create_app`: the speech service as a Litestar app. The lifespan loads the models (unless given)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
from litestar import Litestar, Request, Response
from litestar.datastructures import State

from june.web import error_body, exception_handlers
from speech import routes
from speech.audio import AudioDecodeError
from speech.engines import EngineInputError, Engines, Synthesizer, Transcriber
from speech.settings import SpeechSettings

log = logging.getLogger(__name__)


def load_transcriber(settings: SpeechSettings) -> Transcriber:
    """faster-whisper with the configured model (blocking; seconds)."""
    from speech.whisper import WhisperTranscriber

    return WhisperTranscriber(
        settings.whisper_model,
        device=settings.device,
        compute_type=settings.compute_type,
        cpu_threads=settings.cpu_threads,
        beam_size=settings.beam_size,
        vad_filter=settings.vad_filter,
        cache_dir=settings.cache_dir,
    )


def load_synthesizer(settings: SpeechSettings) -> Synthesizer:
    """Kokoro on the configured backend (blocking; seconds)."""
    from speech.kokoro import BACKENDS, TorchSynthesizer

    factory = BACKENDS[settings.tts_backend]
    if factory is TorchSynthesizer:
        return factory(default_voice=settings.default_voice, lang=settings.tts_lang, device=settings.device)
    return factory(default_voice=settings.default_voice, lang=settings.tts_lang)


def _audio_error(_: Request, exc: AudioDecodeError) -> Response:
    return Response(
        error_body(
            f"Unsupported or corrupt audio file: {exc}", "invalid_request_error", "file", "unsupported_audio_format"
        ),
        status_code=415,
    )


def _engine_error(_: Request, exc: EngineInputError) -> Response:
    return Response(error_body(str(exc), "invalid_request_error", exc.param, "invalid_value"), status_code=400)


def create_app(
    settings: SpeechSettings, *, transcriber: Transcriber | None = None, synthesizer: Synthesizer | None = None
) -> Litestar:
    """The speech app. Models not passed in are loaded in the lifespan (in parallel worker threads)."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        loaded: dict[str, object] = {"t": transcriber, "s": synthesizer}
        start = time.perf_counter()

        async def load(key: str, fn, *args) -> None:  # noqa: ANN001
            loaded[key] = await anyio.to_thread.run_sync(fn, *args)

        async with anyio.create_task_group() as tg:
            if transcriber is None:
                tg.start_soon(load, "t", load_transcriber, settings)
            if synthesizer is None:
                tg.start_soon(load, "s", load_synthesizer, settings)
        log.info("speech models ready in %.2f s", time.perf_counter() - start)
        app.state.engines = Engines(loaded["t"], loaded["s"], settings.max_concurrency)  # type: ignore[arg-type]
        try:
            yield
        finally:
            app.state.engines = None

    return Litestar(
        route_handlers=routes.HANDLERS,
        lifespan=[lifespan],
        state=State({"settings": settings}),
        exception_handlers={
            **exception_handlers,
            AudioDecodeError: _audio_error,
            EngineInputError: _engine_error,
        },
        # Multipart framing adds a little over the file itself; the handler checks the file exactly.
        request_max_body_size=settings.max_upload_bytes + 1024 * 1024,
    )
