"""The speech service under load: 50 concurrent mixed requests end in 200 or 503 (+ Retry-After in
the OpenAI envelope), never a 500 or a dropped connection; memory stays flat across two waves."""

from __future__ import annotations

import asyncio
import re

import httpx
import openai
import pytest

from tests.clips import espeak_wav

CONCURRENCY = 50


def rss_bytes(http: httpx.Client) -> float:
    """The service's resident memory, from prometheus-client's process collector on /metrics."""
    m = re.search(r"^process_resident_memory_bytes ([0-9.e+]+)$", http.get("/metrics").text, re.M)
    assert m, "process_resident_memory_bytes missing from /metrics"
    return float(m.group(1))


async def wave(speech_url: str, clip: bytes) -> list[int]:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(timeout=180, limits=limits) as http_client:
        client = openai.AsyncOpenAI(base_url=speech_url + "/v1", api_key="x", http_client=http_client, max_retries=0)

        async def one(i: int) -> int:
            try:
                if i % 2:
                    t = await client.audio.transcriptions.create(model="tiny.en", file=("c.wav", clip))
                    assert t.text
                else:
                    speech = await client.audio.speech.create(
                        model="tts-1", voice="alloy", input="Yes, right away.", response_format="opus"
                    )
                    assert (await speech.aread()).startswith(b"OggS")
                return 200
            except openai.APIStatusError as e:
                if e.status_code == 503:
                    assert e.response.headers.get("retry-after", "").isdigit(), e.response.headers
                    assert e.body["code"] == "server_busy" and e.body["message"], e.body  # type: ignore[index]
                return e.status_code

        return await asyncio.gather(*(one(i) for i in range(CONCURRENCY)))


def test_fifty_concurrent_mixed_requests(speech_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    clip = espeak_wav("Turn off the radio.", tmp_path_factory.mktemp("load") / "c.wav").read_bytes()
    with httpx.Client(base_url=speech_url, timeout=60) as http:
        first = asyncio.run(wave(speech_url, clip))
        assert set(first) <= {200, 503}, first
        assert 200 in first and 503 in first, first  # the bounded queue admitted some, refused the rest
        rss_first = rss_bytes(http)
        second = asyncio.run(wave(speech_url, clip))
        assert set(second) <= {200, 503} and 200 in second, second
        rss_second = rss_bytes(http)
        # Generous: a leak of per-request buffers (audio, encoders) over 50 requests would exceed it.
        assert rss_second < rss_first + 200 * 1024 * 1024, (rss_first, rss_second)
        assert http.get("/health").status_code == 200
        assert re.search(r"^june_speech_queue_depth 0\.0$", http.get("/metrics").text, re.M)
        r = http.post("/v1/audio/transcriptions", files={"file": ("c.wav", clip)}, data={"model": "tiny.en"})
        assert r.status_code == 200 and "radio" in r.json()["text"].lower(), r.text
