"""Live turns first (issue 25), on the real stack (speech service, CPU vLLM, the gateway): a spoken
turn through the official SDK while a long batch transcription and a small burst of bot-like work
run through the same gateway. The turn is answered, heard right, and its first reply audio comes
before the batch transcription ends (a live turn does not queue behind batch work); the batch and
the burst still finish, and the metrics count each class."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from openai import AsyncOpenAI

from benchmarks.perf.realtime import clip_pcm, stream_pcm
from core.audio import decode, encode
from tests.clips import espeak_wav, wer
from tests.e2e.test_realtime import QUESTION, SESSION, TIMEOUT

pytestmark = pytest.mark.slow  # the whole stack: vLLM through `gateway_url`

PASSAGE = [
    "The river rose slowly through the night.",
    "By morning the low fields were under water.",
    "Farmers moved their cattle to the hills.",
    "The old bridge held, but the road was closed.",
    "Children watched the boats from the school windows.",
    "In the afternoon the rain finally stopped.",
    "Engineers came to check the levees and the pumps.",
    "The water began to fall before sunset.",
]
"""The batch job: these sentences said one after another, twice over (about 40 s of audio)."""


def _passage_wav(tmp: Path) -> tuple[bytes, str]:
    """The passage as one 16 kHz WAV (sentences 0.4 s apart, the list said twice) and its text."""
    gap = np.zeros(int(0.4 * 16000), dtype=np.float32)
    parts: list[np.ndarray] = []
    for i, sentence in enumerate(PASSAGE):
        parts += [decode(espeak_wav(sentence, tmp / f"p{i}.wav").read_bytes(), 16000), gap]
    once = np.concatenate(parts)
    return encode(np.concatenate([once, once]), 16000, "wav"), " ".join(PASSAGE * 2)


def test_a_live_turn_goes_ahead_of_batch_and_burst_work(gateway_url: str, tmp_path: Path) -> None:
    passage, passage_text = _passage_wav(tmp_path)
    question = clip_pcm(espeak_wav(QUESTION, tmp_path / "q.wav"))
    short = espeak_wav(QUESTION, tmp_path / "short.wav").read_bytes()

    async def batch_transcription(http: httpx.AsyncClient) -> tuple[httpx.Response, float]:
        response = await http.post(
            "/v1/audio/transcriptions",
            files={"file": ("passage.wav", passage, "audio/wav")},
            data={"model": "whisper-1", "language": "en"},
            headers={"X-June-Class": "batch"},
        )
        return response, time.perf_counter()

    async def bot_message(http: httpx.AsyncClient, model: str) -> list[int]:
        heard = await http.post(
            "/v1/audio/transcriptions",
            files={"file": ("voice.wav", short, "audio/wav")},
            data={"model": "whisper-1", "language": "en"},
        )
        chat = await http.post(
            "/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16},
        )
        return [heard.status_code, chat.status_code]

    async def live_turn() -> list[tuple[float, Any]]:
        """The spoken turn: every server event until response.done, with its arrival time."""
        client = AsyncOpenAI(base_url=f"{gateway_url}/v1", api_key="unused")
        stamped: list[tuple[float, Any]] = []
        async with client.realtime.connect(model="june") as conn:
            await conn.session.update(session=SESSION)  # type: ignore[arg-type]
            await stream_pcm(question, lambda b64: conn.input_audio_buffer.append(audio=b64), chunk_ms=40)
            async with asyncio.timeout(TIMEOUT):
                async for ev in conn:
                    stamped.append((time.perf_counter(), ev))
                    assert ev.type != "error", ev
                    if ev.type == "response.done":
                        break
        return stamped

    async def run() -> tuple[Any, ...]:
        async with httpx.AsyncClient(base_url=gateway_url, timeout=TIMEOUT) as http:
            batch = asyncio.create_task(batch_transcription(http))
            await asyncio.sleep(1.0)  # the batch job holds the speech service now
            model = (await http.get("/v1/models")).json()["data"][0]["id"]
            bots = [asyncio.create_task(bot_message(http, model)) for _ in range(3)]
            live = await live_turn()
            (batch_response, batch_done), bot_codes = await batch, await asyncio.gather(*bots)
            metrics = (await http.get("/metrics")).text
        return live, batch_response, batch_done, bot_codes, metrics

    stamped, batch_response, batch_done, bot_codes, metrics = anyio.run(run)
    events = [ev for _, ev in stamped]
    heard = next(ev.transcript for ev in events if ev.type == "conversation.item.input_audio_transcription.completed")
    assert wer(QUESTION, heard) <= 0.3, heard  # heard right while the box is busy
    done = events[-1].response
    assert done.status == "completed", done
    audio = [(t, ev) for t, ev in stamped if ev.type == "response.output_audio.delta"]
    assert audio and sum(len(base64.b64decode(ev.delta)) for _, ev in audio) > 24000  # at least 0.5 s of speech
    assert audio[0][0] < batch_done, "the live reply waited for the batch transcription"
    # The batch job and the burst finished too, and right.
    assert batch_response.status_code == 200, batch_response.text
    assert wer(passage_text, batch_response.json()["text"]) <= 0.35, batch_response.json()["text"]
    assert bot_codes == [[200, 200]] * 3
    for request_class in ("live", "interactive", "batch"):
        assert f'june_gateway_class_admitted_total{{class="{request_class}"}}' in metrics, request_class
