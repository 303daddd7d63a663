"""`create_app`: the speech service as a Litestar app.

The lifespan builds the model registries and starts preloading (in worker threads) without waiting:
the server answers /health at once and /ready when the preloaded models are in memory; a request
that needs a model still loading waits for it. Idle models that were not preloaded are unloaded
after `model_ttl_s`.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from litestar import Litestar, Request, Response
from litestar.datastructures import State

from core import observability
from core.audio import AudioDecodeError, AudioTooLong
from core.live_signal import live_signal_at
from core.web import error_body, exception_handlers
from speech import routes
from speech.engines import EngineInputError, Synthesizer, Transcriber
from speech.guards import HallucinationGuard
from speech.lanes import Lanes
from speech.metrics import SpeechMetrics
from speech.models import ModelRegistry
from speech.runtime import Engines
from speech.scheduler import Scheduler
from speech.settings import SpeechSettings

log = logging.getLogger(__name__)


def load_transcriber(settings: SpeechSettings, model: str) -> Transcriber:
    """faster-whisper with `model` and the configured device/decoding options (blocking; seconds)."""
    from speech.whisper import WhisperTranscriber

    return WhisperTranscriber(
        model,
        device=settings.device,
        compute_type=settings.compute_type,
        cpu_threads=settings.cpu_threads,
        beam_size=settings.beam_size,
        vad_filter=settings.vad_filter,
        no_speech_threshold=settings.no_speech_threshold,
        logprob_threshold=settings.logprob_threshold,
        compression_ratio_threshold=settings.compression_ratio_threshold,
        cache_dir=settings.cache_dir,
    )


def load_synthesizer(settings: SpeechSettings) -> Synthesizer:
    """The configured engine: Piper with `piper_voices`, or Kokoro on its backend (blocking; seconds)."""
    voice, aliases = settings.default_voice, settings.voice_aliases
    if settings.engine == "piper":
        from speech.piper import PiperSynthesizer

        return PiperSynthesizer(
            voices=settings.piper_voices, default_voice=voice, threads=settings.tts_threads, aliases=aliases
        )
    from speech.kokoro import BACKENDS

    factory = BACKENDS[settings.tts_backend]
    if settings.tts_backend == "torch":
        return factory(default_voice=voice, lang=settings.tts_lang, device=settings.device, aliases=aliases)
    return factory(default_voice=voice, lang=settings.tts_lang, threads=settings.tts_threads, aliases=aliases)


def _audio_error(_: Request, exc: AudioDecodeError) -> Response:
    return Response(
        error_body(
            f"Unsupported or corrupt audio file: {exc}", "invalid_request_error", "file", "unsupported_audio_format"
        ),
        status_code=415,
    )


def _too_long(_: Request, exc: AudioTooLong) -> Response:
    return Response(
        error_body(f"Audio file is too long: {exc}.", "invalid_request_error", "file", "audio_too_long"),
        status_code=400,
    )


def _engine_error(_: Request, exc: EngineInputError) -> Response:
    return Response(error_body(str(exc), "invalid_request_error", exc.param, "invalid_value"), status_code=400)


def build_engines(
    settings: SpeechSettings,
    *,
    transcriber: Transcriber | None = None,
    synthesizer: Synthesizer | None = None,
    metrics: SpeechMetrics | None = None,
) -> Engines:
    """The Engines for `settings`, nothing loaded yet; their pinned models are the ones to preload
    (`Engines.preloads`): `settings.preload` (default: every configured Whisper model) and the speech
    engine, registered under its name ("piper" or "kokoro": the TTS model in /v1/models).

    A given `transcriber`/`synthesizer` is registered as loaded (and pinned) under the default model /
    the synthesizer's `engine` (and then serves every class: no background Whisper instances).
    `metrics` (default: new ones in a registry of their own) count model calls and the queue.
    With `background_nice` > 0 (Linux), non-live model calls run on lower-priority threads and
    non-live transcriptions on Whisper instances built there (see speech.lanes).
    """
    transcribers: ModelRegistry[Transcriber] = ModelRegistry(
        {n: functools.partial(load_transcriber, settings, n) for n in settings.configured_whisper_models},
        ttl_s=settings.model_ttl_s,
        pinned=set(settings.preload if settings.preload is not None else settings.configured_whisper_models),
    )
    tts_model = synthesizer.engine if synthesizer is not None else settings.engine
    synthesizers: ModelRegistry[Synthesizer] = ModelRegistry(
        {tts_model: functools.partial(load_synthesizer, settings)}, pinned={tts_model}
    )
    if transcriber is not None:
        transcribers.put(settings.whisper_model, transcriber)
    if synthesizer is not None:
        synthesizers.put(tts_model, synthesizer)
    lanes = Lanes(settings.background_nice, workers=settings.slots + 2)
    background: ModelRegistry[Transcriber] | None = None
    if lanes.enabled and transcriber is None:
        background = ModelRegistry(
            {
                n: functools.partial(lanes.load, functools.partial(load_transcriber, settings, n))
                for n in settings.configured_whisper_models
            },
            ttl_s=settings.model_ttl_s,
        )
    scheduler = Scheduler(
        settings.slots,
        settings.max_queue,
        settings.retry_after_s,
        live_slots=settings.live_slots,
        aging_s=settings.batch_aging_s,
        metrics=metrics,
        live_signal=live_signal_at(settings.live_signal),
    )
    return Engines(
        transcribers,
        synthesizers,
        settings.whisper_model,
        scheduler,
        max_audio_s=settings.max_audio_seconds,
        max_speech_s=settings.max_speech_seconds,
        lead_clause=settings.tts_lead_clause,
        guard=HallucinationGuard(
            settings.no_speech_threshold, settings.logprob_threshold, settings.compression_ratio_threshold
        ),
        lanes=lanes,
        background_transcribers=background,
    )


def create_app(
    settings: SpeechSettings,
    *,
    transcriber: Transcriber | None = None,
    synthesizer: Synthesizer | None = None,
    telemetry: observability.Telemetry | None = None,
) -> Litestar:
    """The speech app. Models not passed in are loaded by the lifespan (preloads) or on first use."""
    telemetry = telemetry or observability.setup("speech")
    registry = observability.new_registry()  # this app's metrics only: served on its /metrics
    engines = build_engines(settings, transcriber=transcriber, synthesizer=synthesizer, metrics=SpeechMetrics(registry))
    engines.tracer = telemetry.tracer("speech")
    metrics_middleware, metrics_controller = telemetry.litestar_metrics(registry)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async def load(registry: ModelRegistry[Any], name: str) -> None:
            try:
                await registry.get(name, abandon_on_cancel=True)
            except Exception as e:
                log.exception("preloading model %r failed", name)
                engines.preload_failures[name] = f"{type(e).__name__}: {e}"
                # A service that cannot serve says so and stops: /ready reports the failure for
                # a moment (pollers such as `june up` read why), then the process exits non-zero
                # (`speech.__main__`) for a supervisor to see, instead of "Loading models" forever.
                log.error(
                    "cannot serve: preloading model %r failed (%s); stopping", name, engines.preload_failures[name]
                )
                await anyio.sleep(settings.preload_failure_grace_s)
                os.kill(os.getpid(), signal.SIGTERM)

        async with anyio.create_task_group() as tg:
            for registry, name in engines.preloads():
                tg.start_soon(load, registry, name)
            tg.start_soon(engines.transcribers.reap_forever)
            if engines.background_transcribers is not None:
                tg.start_soon(engines.background_transcribers.reap_forever)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
                engines.lanes.close()

    return Litestar(
        route_handlers=[*routes.HANDLERS, metrics_controller],
        lifespan=[lifespan],
        state=State({"settings": settings, "engines": engines}),
        middleware=[telemetry.server_spans(), metrics_middleware],
        exception_handlers={
            **exception_handlers,
            AudioDecodeError: _audio_error,
            AudioTooLong: _too_long,
            EngineInputError: _engine_error,
        },
        # Multipart framing adds a little over the file itself; the handler checks the file exactly.
        request_max_body_size=settings.max_upload_bytes + 1024 * 1024,
    )
