"""core.text: what is read aloud (no Markdown, code, URLs or emoji) and how it is cut into sentences;
speech.engines.lead_clause: the first clause said on its own."""

from __future__ import annotations

import pytest

from core.text import sentences, speakable
from speech.engines import lead_clause


@pytest.mark.parametrize(
    ("markdown", "spoken"),
    [
        ("**Bold** and *italic* and __strong__ and ~~gone~~", "Bold and italic and strong and gone"),
        ("# Title\n## Sub title", "Title\nSub title"),
        ("- one\n* two\n1. three", "one\ntwo\nthree"),
        ("See [the docs](https://example.com/x) now", "See the docs now"),
        ("Visit https://example.com/a?b=c today", "Visit today"),
        ("Run `ls -la` first", "Run ls -la first"),
        ("Code:\n```python\nprint('hi')\n```\nDone.", "Code:\nDone."),
        ("> quoted text", "quoted text"),
        ("Great job 🎉🚀 you did it 👍🏽!", "Great job you did it !"),
        ("Family 👨‍👩‍👧 and flag 🇯🇵 and ❤️ love", "Family and flag and love"),
        ("snake_case_name stays", "snake_case_name stays"),
        ("<b>html</b> tags", "html tags"),
        ("---\n| a | b |\n|---|---|", "a b"),
    ],
)
def test_speakable_drops_markup_and_emoji(markdown: str, spoken: str) -> None:
    assert speakable(markdown) == spoken


def test_speakable_of_only_markup_is_empty() -> None:
    assert speakable("🎉🎉") == ""
    assert speakable("```\ncode only\n```") == ""


def test_sentences_split_merge_and_cut() -> None:
    text = "Hello there, my friend. How are you today? I am fine! Thanks."
    assert sentences(text) == ["Hello there, my friend.", "How are you today?", "I am fine! Thanks."]
    assert sentences("Hi. Ok. This is a longer sentence.") == ["Hi. Ok. This is a longer sentence."]
    assert sentences("line one is here\nline two is here") == ["line one is here", "line two is here"]
    long = ", ".join(["word " * 10] * 10)
    pieces = sentences(long, max_chars=120)
    assert all(len(p) <= 120 for p in pieces) and len(pieces) > 3
    assert " ".join(pieces).split() == long.split()
    assert sentences("") == []


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("Sure, I can help with that.", ["Sure,", "I can help with that."]),
        ("Note: the oven is preheating now.", ["Note:", "the oven is preheating now."]),
        ("Right — the lights are on in the kitchen.", ["Right —", "the lights are on in the kitchen."]),
        ("Yes, sir.", ["Yes, sir."]),  # the rest is too short to be worth its own call
        ("It costs 1,000 euros and a well-known fee.", ["It costs 1,000 euros and a well-known fee."]),
        ("The lights are on now and the oven is hot.", ["The lights are on now and the oven is hot."]),
        (", and then the rest of the sentence.", [", and then the rest of the sentence."]),
    ],
)
def test_lead_clause_cuts_only_the_first_sentence_at_its_first_clause(text: str, pieces: list[str]) -> None:
    second = "Then, later, another sentence follows here."
    assert lead_clause([text, second]) == [*pieces, second]
    assert " ".join(lead_clause([text])) == text
