"""Text helpers: reasoning cut out of a stream at any chunk boundary, sentences, message splitting."""

from __future__ import annotations

import pytest

from bots.text import SentenceSplitter, VisibleStream, approx_tokens, split_message, strip_reasoning

CONTENTS = [
    "<think>a</think>Hello<think>b</think> there",
    "<think>still thinking when the tokens ran out",
    "Answer first. <think>then rambling",
    "<THINK>\nx\n</THINK>Ok",
    "No reasoning at all. Really < not a tag.",
]


@pytest.mark.parametrize("content", CONTENTS)
@pytest.mark.parametrize("size", [1, 2, 3, 7, 100])
def test_visible_stream_matches_strip_reasoning_at_any_chunking(content, size):
    stream = VisibleStream()
    out = "".join(stream.feed(content[i : i + size]) for i in range(0, len(content), size))
    out += stream.feed("", final=True)
    assert out.strip() == strip_reasoning(content)


def test_visible_stream_drops_text_before_a_stray_closing_tag_in_reach():
    """Template-opened reasoning: text not yet shown before ``</think>`` is dropped. Text already
    shown cannot be taken back; the pipeline then speaks the final reply whole (test_pipeline)."""
    stream = VisibleStream()
    assert stream.feed("thinking about it</think>\n\nHi!") + stream.feed("", final=True) == "\n\nHi!"


def test_sentence_splitter_emits_sentences_as_soon_as_they_end():
    splitter = SentenceSplitter(min_chars=10)
    assert splitter.feed("Hi. The capital") == []  # "Hi." is too short alone
    assert splitter.feed(" is Paris. It is") == ["Hi. The capital is Paris."]
    assert splitter.feed(" big!\nAnd old") == ["It is big!"]
    assert splitter.flush() == ["And old"]
    assert splitter.flush() == []


def test_split_message_prefers_sentence_ends_and_keeps_every_word():
    text = "One two three. Four five six seven eight. Nine."
    pieces = split_message(text, 20)
    assert pieces == ["One two three.", "Four five six seven", "eight. Nine."]
    assert all(len(p) <= 20 for p in pieces) and " ".join(pieces) == text
    assert split_message("Line one.\nLine two.", 100) == ["Line one.\nLine two."]
    assert split_message("x" * 12, 5) == ["xxxxx", "xxxxx", "xx"]
    with pytest.raises(ValueError):
        split_message("x", 0)


def test_approx_tokens_is_a_quarter_of_the_characters():
    assert approx_tokens("") == 0 and approx_tokens("abcd") == 1 and approx_tokens("abcde") == 2


def test_a_code_block_is_never_cut_and_comes_out_whole_once_closed():
    splitter = SentenceSplitter(min_chars=4)
    said = [splitter.feed(piece) for piece in ["Add them:\n```python\n", "def add(a, b):\n", "return a + b\n", "``` That is all. ", "Use ```x.``` freely. "]]
    assert said == [["Add them:"], [], [], ["```python\ndef add(a, b):\nreturn a + b\n``` That is all."], ["Use ```x.``` freely."]]
    assert splitter.flush() == []
