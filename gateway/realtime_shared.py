"""What every /v1/realtime session shares: its bounds, the VAD model, one HTTP client for the
loopback calls, the session count and the metrics (`Realtime`, owned by the gateway app's lifespan).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from gateway.vad import SileroVAD


@dataclass(frozen=True)
class RealtimeLimits:
    """Bounds of every realtime session (from GatewaySettings)."""

    max_event_bytes: int
    max_buffer_s: float
    max_session_s: float
    max_sessions: int
    max_turns: int
    max_history_tokens: int
    transcription_model: str = "whisper-1"
    llm_pauses_for_tts: bool = True


def realtime_limits(settings: Any) -> RealtimeLimits:
    """The realtime bounds a GatewaySettings asks for."""
    return RealtimeLimits(
        max_event_bytes=settings.realtime_max_event_bytes, max_buffer_s=settings.realtime_max_buffer_s,
        max_session_s=settings.realtime_max_session_s, max_sessions=settings.realtime_max_sessions,
        max_turns=settings.realtime_max_turns, max_history_tokens=settings.realtime_max_history_tokens,
        transcription_model=settings.realtime_transcription_model,
        llm_pauses_for_tts=settings.realtime_llm_pauses_for_tts,
    )  # fmt: skip


class Realtime:
    """What every realtime session shares: the VAD model, one HTTP client for the loopback calls,
    the session count and metrics (registered in the gateway's registry). Owned by the app's lifespan."""

    def __init__(self, limits: RealtimeLimits, registry: CollectorRegistry, *, timeout: float) -> None:
        self.limits = limits
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=5.0))
        self.sessions = 0
        self._vad: SileroVAD | None = None
        self.active = Gauge("june_realtime_sessions", "Realtime WebSocket sessions open now.", registry=registry)
        self.events = Counter("june_realtime_events", "Realtime client events received, by type.", ["type"], registry=registry)
        self.first_audio = Histogram(
            "june_realtime_first_audio_seconds", "Seconds from the end of a user turn to the first reply audio sent.",
            buckets=(0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30), registry=registry,
        )  # fmt: skip

    @property
    def vad(self) -> SileroVAD:
        """The Silero model, loaded on first use (the gateway starts without it)."""
        if self._vad is None:
            from gateway.vad import SileroVAD  # numpy, onnxruntime: the realtime extra

            self._vad = SileroVAD()
        return self._vad

    async def aclose(self) -> None:
        await self.http.aclose()


