"""june's vLLM scheduler (june.llm.live_scheduler) on the real CPU server: while the live window is open,
a running lower-class generation gets no tokens and a live one goes on; while its second level is
open (interactive work in flight), a batch generation gets only a small share and an interactive one
goes on; afterwards the paused one resumes where it was and finishes."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import httpx
import pytest

from core.live_signal import LiveSignal
from core.priority import VLLM_PRIORITY
from june.llm.live_scheduler import BATCH_GAP_S

pytestmark = pytest.mark.slow

WINDOW_S = 3.0


async def _stream(client: httpx.AsyncClient, priority: int, max_tokens: int, times: list[float]) -> str | None:
    """Stream a chat completion at vLLM `priority`, appending each content chunk's arrival time to
    `times`; returns the finish reason."""
    body = {
        "model": (await client.get("/v1/models")).json()["data"][0]["id"],
        "messages": [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}],
        "max_tokens": max_tokens, "ignore_eos": True, "stream": True, "priority": priority,
    }  # fmt: skip
    finish = None
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                choice = json.loads(line[6:])["choices"][0]
                if choice["delta"].get("content"):
                    times.append(time.monotonic())
                finish = choice.get("finish_reason") or finish
    return finish


@pytest.mark.parametrize("level", ["live", "interactive"])
def test_lower_classes_pause_while_the_live_window_is_open_and_resume_after(
    llm_url: str, live_window: Path, level: str
) -> None:
    if os.environ.get("JUNE_TEST_LLM_URL"):
        pytest.skip("an outside vLLM does not read this session's live window file")
    window = LiveSignal(live_window)
    batch_times: list[float] = []
    front_times: list[float] = []  # the request of the class the window is open for

    async def run() -> tuple[float, str | None, str | None]:
        async with httpx.AsyncClient(base_url=llm_url, timeout=120) as client:
            batch = asyncio.create_task(_stream(client, VLLM_PRIORITY["batch"], 60, batch_times))
            while len(batch_times) < 5:  # the batch generation is running
                assert not batch.done()
                await asyncio.sleep(0.02)
            opened = time.monotonic()
            window.set(opened + WINDOW_S) if level == "live" else window.set(None, opened + WINDOW_S)
            try:
                front = await _stream(client, VLLM_PRIORITY[level], 12, front_times)
            finally:
                await asyncio.sleep(max(0.0, opened + WINDOW_S - time.monotonic()))
                window.set(None)
            return opened, front, await batch

    opened, front_finish, batch_finish = asyncio.run(run())
    closed = opened + WINDOW_S
    # 0.2 s for the step in flight when the window opened to end (a CPU step of two requests is ~0.05 s).
    paused = [t for t in batch_times if opened + 0.2 < t < closed]
    if level == "live":
        assert paused == [], f"{len(paused)} batch tokens while the window was open"
    else:  # a step every BATCH_GAP_S at most: slowed, not starved
        assert 1 <= len(paused) <= WINDOW_S / BATCH_GAP_S + 1, f"{len(paused)} batch tokens in the window"
    assert front_finish == "length" and len(front_times) == 12 and front_times[0] < closed  # it went on
    assert batch_finish == "length" and len(batch_times) == 60  # resumed where it was, not dropped
    assert any(t > closed for t in batch_times)
