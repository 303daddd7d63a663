"""speech.guards: Whisper hallucinations (credits on silence, no-speech, repetition loops) are dropped."""

from __future__ import annotations

from speech.engines import Segment
from speech.guards import HallucinationGuard, collapse_repeats


def seg(
    text: str,
    *,
    no_speech: float = 0.01,
    logprob: float = -0.3,
    ratio: float = 1.2,
    i: int = 0,
    start: float | None = None,
    length: float = 2.0,
    speech: float | None = None,
) -> Segment:
    start = i * 2.0 if start is None else start
    return Segment(
        i, start, start + length, text, avg_logprob=logprob, compression_ratio=ratio, no_speech_prob=no_speech,
        speech_s=speech,
    )  # fmt: skip


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


def test_repetition_inside_a_segment_is_collapsed() -> None:
    g = HallucinationGuard()
    kept = g.check(seg("I think I think I think we should go go go now."))
    assert kept is not None and kept.text == "I think we should go now."
    assert g.check(seg("Something else.", i=1)) is not None
    assert collapse_repeats("no no") == "no no"  # two is speech, three is a loop
    assert collapse_repeats("a b c a b c a b c d") == "a b c d"


def test_credit_phrases_with_a_few_extra_words_are_dropped_but_sentences_kept() -> None:
    assert HallucinationGuard().check(seg("I'll see you in the next video.")) is None
    assert HallucinationGuard().check(seg("Music")) is None
    assert HallucinationGuard().check(seg("I love music.")) is not None
    long = "We talked about the subtitles by the Amara.org community for an hour yesterday evening."
    assert HallucinationGuard().check(seg(long)) is not None


def test_a_sentence_said_twice_is_kept() -> None:
    """Same words, its own stretch of time with as much speech as the first: the user said it again."""
    g = HallucinationGuard()
    assert g.check(seg("Turn on the lights.", length=2.5, speech=2.3)) is not None
    assert g.check(seg("Turn on the lights.", start=3.4, length=2.4, speech=2.2)) is not None
    assert g.check(seg("Turn on the lights.", start=6.5, length=2.6, speech=2.4)) is not None  # and thrice
    g = HallucinationGuard()  # without VAD figures (another transcriber), timing and confidence decide
    assert g.check(seg("Yes, please.", length=1.0)) is not None
    assert g.check(seg("Yes, please.", start=1.5, length=0.9)) is not None


def test_repetition_loops_are_dropped_by_timing_speech_or_confidence() -> None:
    first = {"length": 3.0, "speech": 2.8}
    loops = {
        "overlap": {"start": 1.0, "length": 3.0, "speech": 2.8},
        "squeezed": {"start": 3.0, "length": 0.8, "speech": 0.8},
        "no_speech_between": {"start": 3.0, "length": 3.0, "speech": 0.4},
        "unsure": {"start": 3.0, "length": 3.0, "speech": 2.8, "logprob": -1.2},
    }
    for why, fields in loops.items():
        g = HallucinationGuard()
        assert g.check(seg("We should go now.", **first)) is not None
        repeat = seg("We should go now!", **fields)  # punctuation and case do not matter
        assert g.loop_reason(repeat) == why
        assert g.check(repeat) is None, why
        assert g.check(seg("Something else.", start=9.0)) is not None  # the guard goes on after a loop
