"""Helpers for the bot tests: the anyio backend, the gateway faked with respx, spoken OGG/Opus clips."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import respx

from core.audio import decode, encode
from core.tokens import estimate_tokens
from tests.clips import espeak_wav

GATEWAY = "http://gateway.test"
"""Base URL of the faked gateway (answered by respx, never resolved)."""
TONE_SECONDS = 0.5
# What the speech service answers for response_format="wav": 0.5 s of a 24 kHz tone.
WAV = encode(0.3 * np.sin(np.linspace(0, 440 * 2 * np.pi * TONE_SECONDS, int(24000 * TONE_SECONDS))), 24000, "wav")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiogram and aiohttp run on asyncio only


def sse(*contents: str, reasoning: str | None = None) -> bytes:
    """A streamed chat completion: role chunk, optional reasoning chunk, one chunk per content, [DONE]."""

    def chunk(delta: dict) -> bytes:
        body = {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "june-test",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
        return f"data: {json.dumps(body)}\n\n".encode()

    parts = [chunk({"role": "assistant", "content": ""})]
    if reasoning:
        parts.append(chunk({"reasoning_content": reasoning, "reasoning": reasoning}))
    parts += [chunk({"content": c}) for c in contents]
    return b"".join(parts) + b"data: [DONE]\n\n"


def stream_response(content: bytes) -> httpx.Response:
    return httpx.Response(200, content=content, headers={"content-type": "text/event-stream"})


@pytest.fixture
def gateway() -> Iterator[respx.MockRouter]:
    """respx routes for the gateway's four endpoints under GATEWAY, named models, stt, chat, tts.

    Transcription hears " What is the capital of France? " (padded: the pipeline strips it), the
    model answers "Paris." (streamed), speech answers WAV. Only httpx is patched, and a request no
    route matches fails the test; a test module may add routes (or override this fixture with one
    that takes it and changes what differs).
    """
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{GATEWAY}/v1/models", name="models").respond(
            json={"object": "list", "data": [{"id": "june-test"}]}
        )
        router.post(f"{GATEWAY}/v1/audio/transcriptions", name="stt").respond(
            json={"text": " What is the capital of France? ", "language": "en", "duration": 2.0}
        )
        router.post(f"{GATEWAY}/v1/chat/completions", name="chat").return_value = stream_response(sse("Paris."))
        router.post(f"{GATEWAY}/v1/audio/speech", name="tts").respond(
            content=WAV, headers={"content-type": "audio/wav"}
        )
        router.post(f"{GATEWAY}/tokenize", name="tokenize").mock(side_effect=_tokenize)
        yield router


def _tokenize(request: httpx.Request) -> httpx.Response:
    """vLLM's /tokenize answer, counting like the fallback estimate (the bots' history bounds stay as they were)."""
    return httpx.Response(
        200, json={"count": estimate_tokens(json.loads(request.content)["prompt"]), "max_model_len": 4096, "tokens": []}
    )


def ogg_opus_clip(text: str, tmp_path: Path) -> bytes:
    """`text` spoken by espeak-ng, encoded as an OGG/Opus file (what Telegram voice notes are)."""
    wav = espeak_wav(text, tmp_path / "clip.wav")
    return encode(decode(wav.read_bytes(), sample_rate=48000), 48000, "opus")


def is_ogg_opus(data: bytes) -> bool:
    """OGG container (``OggS`` capture pattern) whose first stream is Opus (``OpusHead`` header)."""
    return data.startswith(b"OggS") and b"OpusHead" in data[:100]
