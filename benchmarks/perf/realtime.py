"""`june bench realtime`: spoken turns replayed into /v1/realtime at real-time pace, latency per turn.

The helpers at the top (clip → pcm16 24 kHz, paced streaming, pcm → WAV) are shared with the tests.
"""

from __future__ import annotations

import asyncio
import base64
import io
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path

RATE = 24000


def clip_pcm(path: Path, *, lead_s: float = 0.3, tail_s: float = 1.0) -> bytes:
    """The clip at `path` as pcm16 mono 24 kHz, with `lead_s` of silence before and `tail_s` after
    (the tail lets server VAD see the end of speech)."""
    import numpy as np

    from speech.audio import decode  # PyAV: loaded when used, not with the CLI

    samples = decode(path.read_bytes(), RATE)
    padded = np.concatenate([np.zeros(int(lead_s * RATE)), samples, np.zeros(int(tail_s * RATE))])
    return (np.clip(padded, -1, 1) * 32767).astype("<i2").tobytes()


async def stream_pcm(pcm: bytes, append: Callable[[str], Awaitable[None]], *, chunk_ms: int = 40, pace: float = 1.0) -> None:
    """Send `pcm` through `append(base64)` in `chunk_ms` pieces at `pace` × real time (0: as fast as possible)."""
    step = chunk_ms * RATE * 2 // 1000
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n, i in enumerate(range(0, len(pcm), step)):
        await append(base64.b64encode(pcm[i : i + step]).decode())
        if pace:
            await asyncio.sleep(max(0.0, start + (n + 1) * chunk_ms / 1000 / pace - loop.time()))


def pcm_wav(pcm: bytes) -> bytes:
    """pcm16 mono 24 kHz as WAV bytes (to transcribe what june said)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)
    return out.getvalue()
