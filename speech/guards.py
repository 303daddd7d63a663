"""Guards against Whisper's well-known hallucinations on silence, noise and music.

Whisper was trained on subtitles, so on non-speech it invents credits ("Thank you for watching",
"Subtitles by the Amara.org community") or loops one phrase. faster-whisper's VAD removes most
non-speech first; `HallucinationGuard` drops what still slips through, segment by segment, so it
works on streams too:
- no-speech: `no_speech_prob` above a threshold while `avg_logprob` is low (Whisper's own rule,
  applied after the fact because temperature fallback can keep such segments);
- compression ratio above a threshold (gzip ratio of the text: loops compress very well);
- a blocklist of the phrases seen on silence (openai/whisper#928, #1783; faster-whisper#10);
- repetition loops: a phrase repeated 3+ times in a row inside a segment is kept once; a segment
  that repeats the previous kept one verbatim is dropped only when the evidence says Whisper looped
  rather than the user saying it twice (`HallucinationGuard.loop_reason`): its span overlaps the
  previous one, it is squeezed into under half the previous one's time, the VAD heard under half
  the previous one's speech in it, or Whisper is unsure of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol, TypeVar

__all__ = ["BLOCKLIST", "SUSPECTS", "HallucinationGuard", "collapse_repeats"]

BLOCKLIST: tuple[str, ...] = (
    "thank you for watching",
    "thanks for watching",
    "thank you for watching and see you next time",
    "please subscribe",
    "like and subscribe",
    "don't forget to subscribe",
    "subtitles by the amara.org community",
    "subtitles by",
    "transcribed by",
    "transcription by",
    "translated by",
    "captions by",
    "see you in the next video",
    "music",
    "applause",
    "silence",
)
"""Phrases (normalized: lower case, no punctuation) that make a segment a hallucination when they are
all of it, or (phrases of 2+ words) all but at most three words of it."""

SUSPECTS: tuple[str, ...] = ("thank you", "thank you very much", "thanks", "you", "bye", "bye bye", "uh", "um", "so")
"""Whole-segment texts a user may really say, dropped only when the segment is not confident
(no_speech_prob > 0.2 or avg_logprob < -0.7): Whisper's favourite inventions on noise."""


class _Scored(Protocol):
    # A dataclass (speech.engines.Segment, frozen), read only: `check` rebuilds it with `replace`.
    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def text(self) -> str: ...
    @property
    def avg_logprob(self) -> float: ...
    @property
    def no_speech_prob(self) -> float: ...
    @property
    def compression_ratio(self) -> float: ...
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def speech_s(self) -> float | None: ...


S = TypeVar("S", bound=_Scored)
_NON_WORD = re.compile(r"[^\w' ]+")


def _norm(text: str) -> str:
    return " ".join(_NON_WORD.sub(" ", text.lower()).split())


def collapse_repeats(text: str, *, min_repeats: int = 3, max_ngram: int = 8) -> str:
    """`text` with any run of ≥ `min_repeats` consecutive identical word n-grams (n ≤ `max_ngram`) kept once.

    "go go go go home" → "go home"; "I think I think I think so" → "I think so". Comparison ignores
    case and punctuation; the first occurrence's spelling is kept.
    """
    words = text.split()
    keys = [_norm(w) for w in words]
    out_words: list[str] = []
    i = 0
    while i < len(words):
        collapsed = False
        for n in range(1, max_ngram + 1):
            gram = keys[i : i + n]
            if len(gram) < n:
                break
            reps = 1
            while keys[i + reps * n : i + (reps + 1) * n] == gram:
                reps += 1
            if reps >= min_repeats:
                out_words.extend(words[i : i + n])
                i += reps * n
                collapsed = True
                break
        if not collapsed:
            out_words.append(words[i])
            i += 1
    return " ".join(out_words)


@dataclass
class HallucinationGuard:
    """Stateful per-transcription filter: `check(segment)` returns the segment to keep (text maybe
    collapsed) or None to drop it. Make one per request; segments must come in order."""

    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    blocklist: frozenset[str] = field(default_factory=lambda: frozenset(_norm(p) for p in BLOCKLIST))
    suspects: frozenset[str] = field(default_factory=lambda: frozenset(_norm(p) for p in SUSPECTS))
    _previous: _Scored | None = None
    _previous_key: str = ""

    def reason(self, seg: _Scored) -> str | None:
        """Why `seg` is a hallucination ("no_speech", "compression", "blocklist", "empty"), or None."""
        key = _norm(seg.text)
        if not key:
            return "empty"
        if seg.no_speech_prob > self.no_speech_threshold and seg.avg_logprob < self.logprob_threshold:
            return "no_speech"
        if seg.compression_ratio > self.compression_ratio_threshold:
            return "compression"
        if key in self.blocklist:
            return "blocklist"
        # A credit phrase of 2+ words with at most 3 words around it ("I'll see you in the next video").
        words, padded = len(key.split()), f" {key} "
        if any(" " in p and f" {p} " in padded and words <= len(p.split()) + 3 for p in self.blocklist):
            return "blocklist"
        if key in self.suspects and (seg.no_speech_prob > 0.2 or seg.avg_logprob < -0.7):
            return "blocklist"
        return None

    def loop_reason(self, seg: _Scored) -> str | None:
        """Why `seg`, whose text repeats the previous kept segment, is Whisper looping ("overlap",
        "squeezed", "no_speech_between", "unsure"), or None when it is a real second saying.

        A user who says a sentence twice takes about as long, with about as much speech, the second
        time; a decoder stuck on a phrase writes it again over audio that says something else or
        nothing (overlapping or squeezed timestamps, little VAD speech) or with low confidence.
        """
        prev = self._previous
        if prev is None:
            return None
        prev_len, seg_len = prev.end - prev.start, seg.end - seg.start
        if seg.start < prev.end - 0.2:
            return "overlap"
        if seg_len < 0.5 * prev_len:
            return "squeezed"
        if seg.speech_s is not None and prev.speech_s is not None and seg.speech_s < 0.5 * prev.speech_s:
            return "no_speech_between"
        if seg.no_speech_prob > self.no_speech_threshold or seg.avg_logprob < self.logprob_threshold:
            return "unsure"
        return None

    def check(self, seg: S) -> S | None:
        """`seg` to keep (its text with in-segment loops collapsed), or None to drop it."""
        if self.reason(seg) is not None:
            return None
        text = collapse_repeats(seg.text.strip())
        key = _norm(text)
        if key == self._previous_key and self.loop_reason(seg) is not None:
            return None
        self._previous, self._previous_key = seg, key
        return replace(seg, text=text) if text != seg.text else seg
