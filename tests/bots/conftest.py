"""Helpers for the bot tests: the anyio backend and spoken OGG/Opus voice clips."""

from __future__ import annotations

from pathlib import Path

import pytest

from speech.audio import decode, encode
from tests.clips import espeak_wav


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiogram and aiohttp run on asyncio only


def ogg_opus_clip(text: str, tmp_path: Path) -> bytes:
    """`text` spoken by espeak-ng, encoded as an OGG/Opus file (what Telegram voice notes are)."""
    wav = espeak_wav(text, tmp_path / "clip.wav")
    return encode(decode(wav.read_bytes(), sample_rate=48000), 48000, "opus")


def is_ogg_opus(data: bytes) -> bool:
    """OGG container (``OggS`` capture pattern) whose first stream is Opus (``OpusHead`` header)."""
    return data.startswith(b"OggS") and b"OpusHead" in data[:100]
