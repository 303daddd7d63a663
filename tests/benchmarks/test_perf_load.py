"""`june bench load` runs a burst end to end through the bots' core: the gateway answered by respx
at the network edge (one busy answer with Retry-After, waited out), the table and JSON written."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import respx
from typer.testing import CliRunner

from core.audio import encode
from june.cli import app

GATEWAY = "http://gateway.test"
WAV = encode(0.3 * np.sin(np.linspace(0, 440 * 2 * np.pi, 24000)), 24000, "wav")  # 1 s tone
SSE = b'data: {"choices": [{"index": 0, "delta": {"content": "Paris."}}]}\n\ndata: [DONE]\n\n'


def test_bench_load_measures_every_user_and_counts_busy_answers(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    busy = httpx.Response(503, json={"error": {"message": "busy"}}, headers={"Retry-After": "1"})
    ok = httpx.Response(200, json={"text": "What is the capital of France?"})
    with respx.mock(assert_all_called=True) as router:
        router.get(f"{GATEWAY}/v1/models").respond(json={"data": [{"id": "june-test"}]})
        router.post(f"{GATEWAY}/v1/audio/transcriptions").side_effect = [busy, ok, ok, ok]
        router.post(f"{GATEWAY}/v1/chat/completions").respond(
            content=SSE, headers={"content-type": "text/event-stream"}
        )
        router.post(f"{GATEWAY}/v1/audio/speech").respond(content=WAV, headers={"content-type": "audio/wav"})
        result = CliRunner().invoke(
            app, ["bench", "load", "--gateway", GATEWAY, "-n", "3", "--out", str(out)], env={"COLUMNS": "200"}
        )
    assert result.exit_code == 0, result.output
    assert "voice messages of 1.0 s at once" in result.output and "target" in result.output
    report = json.loads(out.read_text())
    summary = report["summary"]
    assert summary["users"] == 3 and summary["voice_replies"] == 3 and summary["apologies"] == 0
    assert summary["busy_answers"] == 1  # the 503 was waited out, not turned into an apology
    assert 0 < summary["first_s"] <= summary["p50_s"] <= summary["p95_s"] <= summary["max_s"]
    assert sorted(u["user"] for u in report["users"]) == [0, 1, 2]
    assert {u["reply"] for u in report["users"]} == {"Paris."}
