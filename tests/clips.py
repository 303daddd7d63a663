"""Spoken test clips (espeak-ng, shipped under tests/data/clips) and WER scoring (benchmarks.perf.wer).

Each clip is made once by espeak-ng (Debian package) and kept in tests/data/clips, keyed by text,
voice and rate, so the suite runs on a machine without espeak-ng; a new text needs espeak-ng once.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from benchmarks.perf.wer import normalize, wer

__all__ = ["CLIPS_DIR", "espeak_wav", "normalize", "wer"]

CLIPS_DIR = Path(__file__).parent / "data" / "clips"


def espeak_wav(text: str, path: Path, *, voice: str = "en-us", wpm: int = 150) -> Path:
    """Write `text` spoken by espeak-ng to `path` as a 22.05 kHz mono 16-bit WAV file.

    Served from tests/data/clips when shipped there; otherwise made by espeak-ng and kept there.
    """
    key = hashlib.sha256(f"{voice}|{wpm}|{text}".encode()).hexdigest()[:16]
    shipped = CLIPS_DIR / f"{key}.wav"
    if not shipped.exists():
        if shutil.which("espeak-ng") is None:
            raise RuntimeError(f"no shipped clip for {text!r} and espeak-ng is not installed (apt install espeak-ng)")
        CLIPS_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(shipped), text], check=True)
    shutil.copyfile(shipped, path)
    return path
