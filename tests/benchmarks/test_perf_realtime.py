"""`june bench realtime`: its playback-stall count (what a client playing reply audio as it arrives hears),
and `--busy` end to end against the real stack (slow)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from benchmarks.perf.realtime import PROMPTS, RATE, playback_stalls
from june.cli import app


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


@pytest.mark.slow  # the whole stack: vLLM through `gateway_url`
def test_busy_mode_measures_idle_and_busy_turns_and_the_background(gateway_url: str, tmp_path: Path) -> None:
    """`--busy` against the real stack, one turn per run: both runs with their turn and what was heard,
    the background's burst and chat loop counted. Structure only: timings belong to the benchmark."""
    plot, report = tmp_path / "realtime.png", tmp_path / "realtime.json"
    args = ["bench", "realtime", "--gateway", gateway_url, "--turns", "1", "--barge-ins", "0", "--busy"]
    args += ["--busy-users", "2", "--busy-chat-max-tokens", "16", "--busy-burst-alone"]
    args += ["--out", str(plot), "--json", str(report)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "idle, STT default" in result.output and "busy, STT default" in result.output
    assert "Background work during the busy runs" in result.output and "input transcript WER" in result.output
    alone, idle, busy = json.loads(report.read_text())["runs"]
    assert (alone["label"], idle["label"], busy["label"]) == ("burst alone", "idle", "busy")
    assert not alone["turns"] and len(alone["background"]["burst"]) == 2 and not alone["background"]["chat_seconds"]
    for run in (idle, busy):
        [turn] = run["turns"]
        assert turn["prompt"] == PROMPTS[0] and turn["heard"].strip() and turn["transcript"].strip()
        assert 0 <= turn["speech_stopped"] <= turn["transcribed"] <= turn["first_audio"]
        assert run["input_wer"] is not None
    assert idle["background"] is None
    background = busy["background"]
    assert background["error"] is None and background["class_header"] == "batch"
    assert len(background["burst"]) == 2 and {u["outcome"] for u in background["burst"]} <= {"voice", "apology"}
    assert len(background["chat_seconds"]) + len(background["chat_errors"]) >= 1
    assert "burst last reply" in result.output  # compared with the burst alone
    assert plot.read_bytes().startswith(b"\x89PNG")
