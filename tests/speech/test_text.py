"""core.text: what is read aloud (no Markdown, code, URLs or emoji) and how it is cut into sentences."""

from __future__ import annotations

import pytest

from core.text import sentences, speakable


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
