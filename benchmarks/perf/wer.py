"""Word error rate (WER) of a transcript against what was said, counted on words only (jiwer).

One home for the scoring the benchmarks (`june bench realtime`'s input-transcript WER) and the tests
(tests/clips.py) share: both normalise the same way, so their figures compare.
"""

from __future__ import annotations

import re

import jiwer

__all__ = ["normalize", "wer"]


def normalize(text: str) -> str:
    """Lower-case, drop punctuation and collapse spaces, so WER counts words only."""
    text = re.sub(r"[^a-z0-9' ]+", " ", text.lower())
    return " ".join(text.split())


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of `hypothesis` against `reference` after `normalize`: (substitutions +
    deletions + insertions) / reference words; 0.0 is perfect, above 1.0 when the hypothesis adds
    more words than the reference has. An empty reference scores 0.0 for an empty hypothesis, else 1.0."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp))
