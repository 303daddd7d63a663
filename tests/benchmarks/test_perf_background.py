"""The background load of `june bench realtime --busy` (benchmarks/perf/background.py): a `june bench
load` burst and batch-class chat loops, the gateway answered by respx at the network edge; a gateway
that refuses the class header (one without request classes may) gets the loops without it."""

from __future__ import annotations

import json
import time

import httpx
import numpy as np
import pytest
import respx

from benchmarks.perf.background import CHAT_PROMPT, Background, BackgroundSpec
from core.audio import encode
from core.priority import HEADER

GATEWAY = "http://gateway.test"
WAV = encode(0.3 * np.sin(np.linspace(0, 440 * 2 * np.pi, 24000)), 24000, "wav")  # 1 s tone
SSE = b'data: {"choices": [{"index": 0, "delta": {"content": "Paris."}}]}\n\ndata: [DONE]\n\n'
COMPLETION = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Wheels."}}]}


def _run(refuse_class: bool) -> tuple[Background, list[httpx.Request]]:
    """The background with 3 burst users and 2 chat loops, stopped once the loops have sent 20
    requests (they keep going until stopped); the loops' requests."""
    loops: list[httpx.Request] = []

    def chat(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body.get("stream"):  # the bots' core streams; the loops do not
            assert HEADER.lower() not in request.headers  # the burst is the bots' ordinary (interactive) work
            return httpx.Response(200, content=SSE, headers={"content-type": "text/event-stream"})
        loops.append(request)
        if refuse_class and HEADER.lower() in request.headers:
            return httpx.Response(400, json={"error": {"message": f"unknown header {HEADER}", "type": "invalid"}})
        return httpx.Response(200, json=COMPLETION)

    with respx.mock(assert_all_called=True) as router:
        router.get(f"{GATEWAY}/v1/models").respond(json={"data": [{"id": "june-test"}]})
        router.post(f"{GATEWAY}/v1/audio/transcriptions").respond(json={"text": "What is the capital of France?"})
        router.post(f"{GATEWAY}/v1/chat/completions").mock(side_effect=chat)
        router.post(f"{GATEWAY}/v1/audio/speech").respond(content=WAV, headers={"content-type": "audio/wav"})
        background = Background(GATEWAY, None, BackgroundSpec(users=3, chat_loops=2, chat_max_tokens=8))
        background.start()
        deadline = time.monotonic() + 60
        while len(loops) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        background.join(60)
    return background, loops


def test_the_burst_finishes_and_the_chat_loops_run_at_the_batch_class_until_stopped() -> None:
    background, loops = _run(refuse_class=False)
    result = background.result
    assert result.error is None and result.class_header == "batch"
    assert sorted(u.user for u in result.burst) == [0, 1, 2]
    assert {u.outcome for u in result.burst} == {"voice"} and result.clip_s == pytest.approx(1.0, abs=0.05)
    assert len(result.chat_seconds) == len(loops) >= 20 and not result.chat_errors
    assert all(r.headers[HEADER] == "batch" for r in loops)
    body = json.loads(loops[0].content)
    assert body["max_tokens"] == 8 and body["messages"][0]["content"] == CHAT_PROMPT
    count = len(loops)
    time.sleep(0.1)
    assert len(loops) == count  # stopped: nothing sent after join


def test_a_gateway_that_refuses_the_class_header_gets_the_loops_without_it() -> None:
    background, loops = _run(refuse_class=True)
    result = background.result
    assert result.class_header == "refused (sent without)"
    assert HEADER.lower() in loops[0].headers
    assert all(HEADER.lower() not in r.headers for r in loops[2:])  # each loop's first try may carry it
    assert result.chat_seconds and not result.chat_errors
    assert {u.outcome for u in result.burst} == {"voice"}


def test_a_background_that_cannot_prepare_says_why() -> None:
    with respx.mock() as router:
        router.post(f"{GATEWAY}/v1/audio/speech").respond(400, json={"error": {"message": "no such voice"}})
        background = Background(GATEWAY, None, BackgroundSpec(users=1, chat_loops=1), timeout=5)
        with pytest.raises(RuntimeError, match="could not start"):
            background.start()
