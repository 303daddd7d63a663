"""speech.guards: Whisper hallucinations (credits on silence, no-speech, repetition loops) are dropped."""

from __future__ import annotations

from speech.engines import Segment
from speech.guards import HallucinationGuard, collapse_repeats


def seg(text: str, *, no_speech: float = 0.01, logprob: float = -0.3, ratio: float = 1.2, i: int = 0) -> Segment:
    return Segment(i, i * 2.0, i * 2.0 + 2.0, text, avg_logprob=logprob, compression_ratio=ratio, no_speech_prob=no_speech)


def test_real_speech_is_kept() -> None:
    g = HallucinationGuard()
    s = seg("Please turn on the kitchen lights.")
    assert g.check(s) is s


def test_blocklisted_credits_are_dropped_even_when_confident() -> None:
    for text in ("Thank you for watching!", "Subtitles by the Amara.org community", " thanks for watching. "):
        assert HallucinationGuard().check(seg(text)) is None, text


def test_suspect_phrases_need_weak_evidence() -> None:
    assert HallucinationGuard().check(seg("Thank you.")) is not None  # a user may say it
    assert HallucinationGuard().check(seg("Thank you.", no_speech=0.4)) is None
    assert HallucinationGuard().check(seg("You", logprob=-0.9)) is None


def test_no_speech_with_low_logprob_and_loops_are_dropped() -> None:
    assert HallucinationGuard().check(seg("Some words", no_speech=0.9, logprob=-1.5)) is None
    assert HallucinationGuard().check(seg("Some words", no_speech=0.9, logprob=-0.2)) is not None
    assert HallucinationGuard().check(seg("la la la la la la la la", ratio=3.1)) is None
    assert HallucinationGuard(compression_ratio_threshold=5).check(seg("x", ratio=3.1)) is not None


def test_repetition_is_collapsed_and_repeated_segments_dropped() -> None:
    g = HallucinationGuard()
    kept = g.check(seg("I think I think I think we should go go go now."))
    assert kept is not None and kept.text == "I think we should go now."
    assert g.check(seg("I think we should go now", i=1)) is None  # same as the previous segment
    assert g.check(seg("Something else.", i=2)) is not None
    assert collapse_repeats("no no") == "no no"  # two is speech, three is a loop
    assert collapse_repeats("a b c a b c a b c d") == "a b c d"


def test_credit_phrases_with_a_few_extra_words_are_dropped_but_sentences_kept() -> None:
    assert HallucinationGuard().check(seg("I'll see you in the next video.")) is None
    assert HallucinationGuard().check(seg("Music")) is None
    assert HallucinationGuard().check(seg("I love music.")) is not None
    long = "We talked about the subtitles by the Amara.org community for an hour yesterday evening."
    assert HallucinationGuard().check(seg(long)) is not None
