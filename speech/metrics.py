"""Prometheus metrics of the speech models, next to the per-request ones of `core.observability`.

Registered in the registry of the app that owns them (`create_app` makes one per app and serves it
on `GET /metrics`), so two speech apps in one process keep separate counts.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class SpeechMetrics:
    """The speech service's model and queue metrics, in `registry` (default: a new, unserved one)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry if registry is not None else CollectorRegistry()
        self.audio_seconds = Counter(
            "june_speech_audio_seconds",
            "Seconds of audio transcribed (stt) or synthesized (tts).",
            ["kind", "model"],
            registry=r,
        )
        self.model_seconds = Histogram(
            "june_speech_model_call_seconds",
            "Wall time of one model call (a whole transcription, or one sentence of speech).",
            ["kind", "model"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.real_time_factor = Histogram(
            "june_speech_real_time_factor",
            "Processing time / audio duration per model call; < 1 is faster than real time.",
            ["kind", "model"],
            buckets=(0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5),
            registry=r,
        )
        self.queue_depth = Gauge(
            "june_speech_queue_depth", "Requests admitted and waiting for or holding a model slot.", registry=r
        )
        self.admitted = Counter(
            "june_speech_admitted", "Requests admitted to the queue, by request class.", ["class"], registry=r
        )
        self.rejected = Counter(
            "june_speech_rejected",
            "Requests refused with 503 because the queue of their request class was full.",
            ["class"],
            registry=r,
        )
        waits = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
        self.queue_wait = Histogram(
            "june_speech_queue_wait_seconds",
            "Seconds a request waited for a model slot in all (preemptions included), by request class.",
            ["class"],
            buckets=waits,
            registry=r,
        )
        self.service = Histogram(
            "june_speech_service_seconds",
            "Seconds a request held a model slot in all, by request class.",
            ["class"],
            buckets=waits,
            registry=r,
        )
        self.preempted = Counter(
            "june_speech_preempted",
            "Times a running request gave its slot up to a higher request class between two units "
            "(Whisper segments, sentences), by the class that gave way.",
            ["class"],
            registry=r,
        )
        self.abandoned = Counter(
            "june_speech_abandoned",
            "Requests stopped because their client disconnected: "
            "while waiting for a slot (queued) or holding one (running).",
            ["stage"],
            registry=r,
        )
        self.background_pauses = Counter(
            "june_speech_background_pauses",
            "Times the background worker process (non-live Whisper and TTS calls) was stopped for a live window.",
            registry=r,
        )
        self.background_paused = Counter(
            "june_speech_background_paused_seconds",
            "Seconds the background worker process spent stopped for live windows.",
            registry=r,
        )
        self.slots = Gauge("june_speech_slots", "Model slots: requests served at once.", registry=r)

    def observe(self, kind: str, model: str, audio_s: float, elapsed_s: float) -> None:
        """Record one model call: `kind` "stt" or "tts", `audio_s` seconds of audio, `elapsed_s` wall time."""
        self.audio_seconds.labels(kind, model).inc(audio_s)
        self.model_seconds.labels(kind, model).observe(elapsed_s)
        if audio_s > 0:
            self.real_time_factor.labels(kind, model).observe(elapsed_s / audio_s)
