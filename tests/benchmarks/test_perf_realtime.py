"""`june bench realtime`'s playback-stall count: what a client playing reply audio as it arrives hears."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest

from benchmarks.perf.realtime import RATE, playback_stalls


def _audio(ms: int, response_id: str = "resp_1") -> SimpleNamespace:
    delta = base64.b64encode(bytes(RATE * 2 * ms // 1000)).decode()
    return SimpleNamespace(type="response.output_audio.delta", response_id=response_id, delta=delta)


@pytest.mark.parametrize(
    ("arrivals", "stalled"),
    [
        ([(0.0, 500), (0.1, 500), (0.2, 500)], 0.0),  # faster than real time: never waits
        ([(0.0, 500), (0.8, 500)], 0.3),  # 0.5 s played, the next came 0.3 s later
        ([(0.0, 500), (0.8, 500), (1.2, 100), (2.0, 100)], 0.3 + 0.6),  # played to 1.4, then 2.0 - 1.4
        ([(0.0, 100)], 0.0),
    ],
)
def test_stalls_are_the_gaps_after_the_audio_so_far_has_played(
    arrivals: list[tuple[float, int]], stalled: float
) -> None:
    log = [(t, _audio(ms)) for t, ms in arrivals]
    assert playback_stalls(log, "resp_1") == pytest.approx(stalled)


def test_other_events_and_other_responses_do_not_count() -> None:
    other = SimpleNamespace(type="response.output_audio_transcript.delta", response_id="resp_1", delta="Hi")
    log = [(0.0, _audio(100)), (0.05, other), (0.1, _audio(100, "resp_0")), (0.15, _audio(100))]
    assert playback_stalls(log, "resp_1") == pytest.approx(0.05)
    assert playback_stalls([], "resp_1") == 0.0
