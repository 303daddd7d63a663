"""Spoken test clips made at test time with espeak-ng (Debian package), and WER scoring (jiwer)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import jiwer


def espeak_wav(text: str, path: Path, *, voice: str = "en-us", wpm: int = 150) -> Path:
    """Write `text` spoken by espeak-ng to `path` as a 22.05 kHz mono 16-bit WAV file."""
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(path), text], check=True)
    return path


def normalize(text: str) -> str:
    """Lower-case, drop punctuation and collapse spaces, so WER counts words only."""
    text = re.sub(r"[^a-z0-9' ]+", " ", text.lower())
    return " ".join(text.split())


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of `hypothesis` against `reference` after `normalize`; 0.0 is perfect."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return jiwer.wer(ref, hyp)
