"""What every /v1/realtime session shares: its settings (`gateway.settings.RealtimeSettings`), the
VAD model, one traced HTTP client for the loopback calls, the session count and the metrics
(`Realtime`, owned by the gateway app's lifespan).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core.observability import Telemetry
from core.priority import HEADER
from gateway.admission import Admission, LiveHold
from gateway.classes import LIVE_PROOF, LiveProof
from gateway.settings import RealtimeSettings

if TYPE_CHECKING:
    from gateway.vad import SileroVAD

INITIAL_TRANSCRIPTION_S = 0.3
"""`Realtime.transcription_s` before any turn: tiny.en on a short turn, 2 CPU cores (0.25-0.45 s)."""
MAX_TRANSCRIPTION_S = 5.0
"""One transcription counts as at most this long (seconds), so one stalled call cannot skew the average."""


class Realtime:
    """What every realtime session shares: `settings`, the VAD model, one HTTP client for the loopback
    calls (`timeout` seconds to read, traced by `telemetry`, so a turn's calls join the trace; each
    marked live with `live_proof`), the gateway's `admission` (a turn waiting for its answer holds
    other work back), the session count and metrics (registered in the gateway's `registry`). Owned
    by the app's lifespan."""

    def __init__(
        self,
        settings: RealtimeSettings,
        registry: CollectorRegistry,
        *,
        timeout: float,
        telemetry: Telemetry,
        admission: Admission,
        live_proof: LiveProof,
    ) -> None:
        self.settings = settings
        self.admission = admission
        # Every loopback call is live work (core.priority), proven with the gateway's secret.
        live = {HEADER: "live", LIVE_PROOF: live_proof.secret}
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=5.0), headers=live)
        telemetry.instrument(self.http)
        self.tracer = telemetry.tracer("gateway.realtime")  # a span per transcription and per response
        self.sessions = 0
        self.transcription_s = INITIAL_TRANSCRIPTION_S
        """How long a live turn's transcription takes here lately (seconds, wall time: a moving
        average of the last few, `transcribed`); where in a silence the early one starts depends on it."""
        self._vad: SileroVAD | None = None
        self.active = Gauge("june_realtime_sessions", "Realtime WebSocket sessions open now.", registry=registry)
        self.events = Counter(
            "june_realtime_events", "Realtime client events received, by type.", ["type"], registry=registry
        )
        self.first_audio = Histogram(
            "june_realtime_first_audio_seconds",
            "Seconds from the end of a user turn to the first reply audio sent.",
            buckets=(0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
            registry=registry,
        )

    @property
    def vad(self) -> SileroVAD:
        """The Silero model, loaded on first use (the gateway starts without it)."""
        if self._vad is None:
            from gateway.vad import SileroVAD  # numpy, onnxruntime: the realtime extra

            self._vad = SileroVAD()
        return self._vad

    def transcribed(self, seconds: float) -> None:
        """Count a live turn's transcription that took `seconds` (wall time) in `transcription_s`."""
        self.transcription_s = 0.7 * self.transcription_s + 0.3 * min(seconds, MAX_TRANSCRIPTION_S)

    def hold_others(self) -> LiveHold:
        """Hold other classes of work back while a live turn waits for its answer (`gateway.admission`)."""
        return self.admission.hold()

    async def aclose(self) -> None:
        await self.http.aclose()
