"""Word error rate (WER) of a transcript against what was said, counted on words only (jiwer).

One home for the scoring the benchmarks (`june bench realtime`'s input-transcript WER) and the tests
(tests/clips.py) share: both normalise the same way, so their figures compare.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import jiwer

__all__ = ["corpus_wer", "normalize", "wer"]


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


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """WER over many utterances at once (`references[i]` said, `hypotheses[i]` heard), after
    `normalize`: every error over every reference word, so a long utterance weighs more than a
    short one. NaN for no utterances or no reference words; raises ValueError for lists of
    different lengths."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    pairs = [(normalize(r), normalize(h)) for r, h in zip(references, hypotheses, strict=True)]
    pairs = [(r, h) for r, h in pairs if r]
    if not pairs:
        return math.nan
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))
