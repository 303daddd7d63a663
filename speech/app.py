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
from speech.loaders import load_synthesizer, load_transcriber
from speech.metrics import SpeechMetrics
from speech.models import ModelRegistry
from speech.runtime import Engines
from speech.scheduler import Scheduler
from speech.settings import SpeechSettings
from speech.worker import BackgroundWorker, WorkerTranscriber

log = logging.getLogger(__name__)


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
    With `background_nice` > 0 (Linux), non-live decoding and encoding run on lower-priority threads
    (speech.lanes) and, unless a model was passed in, non-live Whisper and TTS calls in a child process
    at that lower priority which the live window stops (speech.worker).
    """
    metrics = metrics or SpeechMetrics()
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
    lanes = Lanes(settings.background_nice_or_default, workers=settings.slots + 2)
    live_signal = live_signal_at(settings.live_signal)
    worker: BackgroundWorker | None = None
    background: ModelRegistry[Transcriber] | None = None
    if lanes.enabled and transcriber is None and synthesizer is None:
        worker = BackgroundWorker(settings, nice=lanes.nice, live_signal=live_signal, metrics=metrics)
        background = ModelRegistry(
            {n: functools.partial(WorkerTranscriber.load, worker, n) for n in settings.configured_whisper_models},
            ttl_s=settings.model_ttl_s,
        )
    scheduler = Scheduler(
        settings.slots,
        settings.max_queue,
        settings.retry_after_s,
        live_slots=settings.live_slots,
        aging_s=settings.batch_aging_s,
        metrics=metrics,
        live_signal=live_signal,
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
        worker=worker,
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

        if engines.worker is not None:
            engines.worker.start()
        try:
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
        finally:
            engines.lanes.close()
            if engines.worker is not None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(engines.worker.close)

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
