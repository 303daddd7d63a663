"""Prometheus metrics of the speech models, next to the per-request ones of `core.observability`.

prometheus-client keeps collectors in one process-wide registry (served by `GET /metrics`), so they
are created once here; every app in the process shares them (labels say which model).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

AUDIO_SECONDS = Counter(
    "june_speech_audio_seconds", "Seconds of audio transcribed (stt) or synthesized (tts).", ["kind", "model"]
)
MODEL_SECONDS = Histogram(
    "june_speech_model_call_seconds",
    "Wall time of one model call (a whole transcription, or one sentence of speech).",
    ["kind", "model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
REAL_TIME_FACTOR = Histogram(
    "june_speech_real_time_factor",
    "Processing time / audio duration per model call; < 1 is faster than real time.",
    ["kind", "model"],
    buckets=(0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5),
)
QUEUE_DEPTH = Gauge("june_speech_queue_depth", "Requests admitted and waiting for or holding a model slot.")
REJECTED = Counter("june_speech_rejected", "Requests refused with 503 because the queue was full.")
ABANDONED = Counter(
    "june_speech_abandoned",
    "Requests stopped because their client disconnected: while waiting for a slot (queued) or holding one (running).",
    ["stage"],
)
SLOTS = Gauge("june_speech_slots", "Model slots: requests served at once.")


def observe(kind: str, model: str, audio_s: float, elapsed_s: float) -> None:
    """Record one model call: `kind` "stt" or "tts", `audio_s` seconds of audio, `elapsed_s` wall time."""
    AUDIO_SECONDS.labels(kind, model).inc(audio_s)
    MODEL_SECONDS.labels(kind, model).observe(elapsed_s)
    if audio_s > 0:
        REAL_TIME_FACTOR.labels(kind, model).observe(elapsed_s / audio_s)
