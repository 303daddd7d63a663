"""`june bench telegram`: a burst through the real aiogram bot polling the fake Bot API, the gateway
answered by respx at the network edge (aiogram's aiohttp is not patched, so the fake is reached for real).
One transcription gets a busy answer that the bot waits out; one chat gets an apology."""

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
METRICS = 'june_gateway_requests_total{{key="anonymous",model="-",route="/v1/audio/transcriptions",status="503"}} {}\n'


def test_bench_telegram_counts_voice_replies_apologies_and_busy_answers(tmp_path: Path) -> None:
    out = tmp_path / "telegram.json"
    busy = httpx.Response(503, json={"error": {"message": "busy"}}, headers={"Retry-After": "1"})
    heard = httpx.Response(200, json={"text": "What is the capital of France?"})
    broken = httpx.Response(400, json={"error": {"message": "undecodable audio", "code": "undecodable"}})
    with respx.mock(assert_all_called=True) as router:
        router.get(f"{GATEWAY}/metrics").side_effect = [
            httpx.Response(200, text=METRICS.format(4.0)),
            httpx.Response(200, text=METRICS.format(5.0)),
        ]
        router.get(f"{GATEWAY}/v1/models").respond(json={"data": [{"id": "june-test"}]})
        router.post(f"{GATEWAY}/v1/audio/transcriptions").side_effect = [busy, heard, heard, broken, heard]
        router.post(f"{GATEWAY}/v1/chat/completions").respond(
            content=SSE, headers={"content-type": "text/event-stream"}
        )
        router.post(f"{GATEWAY}/v1/audio/speech").respond(content=WAV, headers={"content-type": "audio/wav"})
        router.post(f"{GATEWAY}/tokenize").respond(json={"count": 10, "max_model_len": 4096, "tokens": []})
        args = ["bench", "telegram", "--gateway", GATEWAY, "-n", "4", "--cpu-job", "--out", str(out)]
        result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "4 voice notes at once through the Telegram bot" in result.output
    assert "goal (4 voice replies, 0 apologies): not met" in result.output
    report = json.loads(out.read_text())
    summary = report["summary"]
    assert summary["users"] == 4 and summary["cpu_job"] is True
    assert summary["voice_replies"] == 3 and summary["apologies"] == 1 and summary["no_answer"] == 0
    assert summary["goal_met"] is False
    assert summary["bot_voice_messages"] == {"reply": 3.0, "error": 1.0, "refused": 0.0}
    assert summary["gateway_busy_answers"] == {"/v1/audio/transcriptions 503": 1.0}
    assert 0 < summary["first_s"] <= summary["p50_s"] <= summary["last_s"]
    chats = report["chats"]
    assert sorted(c["outcome"] for c in chats) == ["apology", "voice", "voice", "voice"]
    assert all("Paris." in c["text"] for c in chats if c["outcome"] == "voice")
