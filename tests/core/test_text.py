"""core.text: reasoning removed (whole and streamed), what is read aloud, and the one sentence
splitter that speech, the bots' overlapped synthesis, the realtime session and message splitting share."""

from __future__ import annotations

import random

import pytest

from core.reasoning import VisibleStream, strip_reasoning
from core.speakable import speakable
from core.text import MIN_CHARS, SentenceSplitter, lead_clause, sentences, split_message


def pieces(text: str, min_chars: int = 0) -> list[str]:
    """What the stream splitter makes of `text` fed whole."""
    splitter = SentenceSplitter(min_chars)
    return splitter.feed(text) + splitter.flush()


def chunked(text: str, sizes: random.Random, min_chars: int = 0) -> list[str]:
    splitter = SentenceSplitter(min_chars)
    out: list[str] = []
    i = 0
    while i < len(text):
        n = sizes.randint(1, 12)
        out += splitter.feed(text[i : i + n])
        i += n
    return out + splitter.flush()


# --- Reasoning -----------------------------------------------------------------------------------

CONTENTS = [
    "<think>a</think>Hello<think>b</think> there",
    "<think>still thinking when the tokens ran out",
    "Answer first. <think>then rambling",
    "<THINK>\nx\n</THINK>Ok",
    "No reasoning at all. Really < not a tag.",
    "< think >spaced tags</ Think >Fine. <thinking> is not a tag.",
]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("<think>a</think>Hello<think>b</think> there", "Hello there"),
        ("<think>still thinking when the tokens ran out", ""),
        ("Answer first. <think>then rambling", "Answer first."),
        ("reasoning whose opening tag was in the prompt</think>\n\nHi!", "Hi!"),
        ("<THINK>\nx\n</THINK>Ok", "Ok"),
        ("No reasoning at all.", "No reasoning at all."),
        ("<think>a</think>b<think>c", "b"),  # the coding agent's case (was benchmarks.agent.strip_reasoning)
        ("< think >x</ THINK >Ok", "Ok"),
        ("Qwen3 thought here</think>\n<think>\n</think>\nThe answer.", "The answer."),
    ],
)
def test_strip_reasoning(content, expected):
    assert strip_reasoning(content) == expected


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


# --- What is read aloud --------------------------------------------------------------------------


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


# --- Sentences -----------------------------------------------------------------------------------

# (text, its sentences): each case is one family a reviewer will retry with new members.
CASES = [
    # abbreviations
    ("Use a tool, e.g. a hammer. Then stop.", ["Use a tool, e.g. a hammer.", "Then stop."]),
    ("The best one, i.e. this one, wins. Next.", ["The best one, i.e. this one, wins.", "Next."]),
    (
        "Ask Dr. Smith and Mr. Brown on Main St. today. Bye now.",
        ["Ask Dr. Smith and Mr. Brown on Main St. today.", "Bye now."],
    ),
    ("Buy milk, eggs, etc. and bread. Then go.", ["Buy milk, eggs, etc. and bread.", "Then go."]),
    (
        "Meet me at 5 p.m. today. It was 5 p.m. Then we left.",
        ["Meet me at 5 p.m. today.", "It was 5 p.m.", "Then we left."],
    ),
    ("He lives in the U.S. now. Ok.", ["He lives in the U.S. now.", "Ok."]),
    # decimals and version numbers
    (
        "Pi is 3.14 and v1.2.3 is out. Version 2.0. Next one.",
        ["Pi is 3.14 and v1.2.3 is out.", "Version 2.0.", "Next one."],
    ),
    # URLs and e-mail addresses
    (
        "See https://example.com/a.b?c=d. Mail a.b@c.org. Then www.x.io/Y. Done.",
        ["See https://example.com/a.b?c=d.", "Mail a.b@c.org.", "Then www.x.io/Y.", "Done."],
    ),
    # ellipses
    (
        "Wait... what? Really… yes. I think… maybe. So... Done.",
        ["Wait... what?", "Really… yes.", "I think… maybe.", "So...", "Done."],
    ),
    # CJK end marks with no space after
    ("你好。今天天气很好！是吗？好的", ["你好。", "今天天气很好！", "是吗？", "好的"]),
    ("これは本です。「本当？」はい。", ["これは本です。", "「本当？」", "はい。"]),
    # code: inline and fenced
    ("Call `a.b()` first. Then `x. Y` works.", ["Call `a.b()` first.", "Then `x. Y` works."]),
    (
        "Run this:\n```python\nx = 1. \n\ny = x.real\n```\nDone. Ok now.",
        ["Run this:", "```python\nx = 1. \n\ny = x.real\n```", "Done.", "Ok now."],
    ),
    # quotes and brackets after the end mark
    (
        'He said "Stop." Then left. She asked “Why?” Nobody knew. Did it fall?) Yes (see above). Next.',
        [
            'He said "Stop."',
            "Then left.",
            "She asked “Why?”",
            "Nobody knew.",
            "Did it fall?)",
            "Yes (see above).",
            "Next.",
        ],
    ),
    # newlines and paragraphs; no cut without a space after the mark
    (
        "Line one\nLine two. And\n\nPara two.\n- item\nHi.Then a.b stays.",
        ["Line one", "Line two.", "And", "Para two.", "- item", "Hi.Then a.b stays."],
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:30] for c in CASES])
def test_sentences_end_only_where_a_sentence_ends(text: str, expected: list[str]) -> None:
    assert pieces(text) == expected
    assert sentences(text, min_chars=0, max_chars=1000) == expected  # speech: the same splitter


@pytest.mark.parametrize("min_chars", [0, MIN_CHARS])
def test_stream_output_does_not_depend_on_chunking(min_chars: int) -> None:
    """Property: random chunk sizes give the same sentences as the whole text."""
    text = "\n\n".join(text for text, _ in CASES)
    whole = pieces(text, min_chars)
    sizes = random.Random(17)
    for _ in range(60):
        assert chunked(text, sizes, min_chars) == whole


def test_a_sentence_comes_out_as_soon_as_it_is_certain():
    splitter = SentenceSplitter(min_chars=0)
    assert splitter.feed("It was 5 p.m. ") == []  # "5 p.m." may go on ("5 p.m. today")
    assert splitter.feed("Then ") == []  # after an abbreviation sentencex reads two words ahead
    assert splitter.feed("we ") == ["It was 5 p.m."]
    assert splitter.feed("met at 5 p.m. today. B") == ["Then we met at 5 p.m. today."]  # a cut whatever "B…" is
    assert splitter.feed("ye!\nNext") == ["Bye!"]  # a line break ends a piece at once
    assert splitter.feed("。次") == ["Next。"]  # so does a CJK end mark with something after it
    assert splitter.feed(" `a. b") == []  # inline code still open: not cut inside
    assert splitter.feed("` works. G") == ["次 `a. b` works."]
    assert splitter.flush() == ["G"]
    assert splitter.flush() == []


def test_sentence_splitter_emits_sentences_as_soon_as_they_end():
    splitter = SentenceSplitter(min_chars=10)
    assert splitter.feed("Hi. The capital") == []  # "Hi." is too short alone
    assert splitter.feed(" is Paris. It is") == ["Hi. The capital is Paris."]
    assert splitter.feed(" big!\nAnd old") == ["It is big!"]
    assert splitter.flush() == ["And old"]
    assert splitter.flush() == []


def test_a_code_block_is_never_cut_and_comes_out_whole_once_closed():
    splitter = SentenceSplitter(min_chars=4)
    said = [
        splitter.feed(piece)
        for piece in [
            "Add them:\n```python\n",
            "def add(a, b):\n",
            "return a + b\n",
            "``` That is all. ",
            "Use ```x.``` freely. ",
        ]
    ]
    assert said == [
        ["Add them:"],
        [],
        [],
        ["```python\ndef add(a, b):\nreturn a + b\n``` That is all."],
        ["Use ```x.``` freely."],
    ]
    assert splitter.flush() == []


def test_sentences_split_merge_and_cut() -> None:
    text = "Hello there, my friend. How are you today? I am fine! Thanks."
    assert sentences(text) == ["Hello there, my friend.", "How are you today?", "I am fine! Thanks."]
    assert sentences("Hi. Ok. This is a longer sentence.") == ["Hi. Ok. This is a longer sentence."]
    assert sentences("This is a longer sentence. Ok.") == ["This is a longer sentence. Ok."]  # a short last piece too
    assert sentences("line one is here\nline two is here") == ["line one is here", "line two is here"]
    long = ", ".join(["word " * 10] * 10)
    pieces = sentences(long, max_chars=120)
    assert all(len(p) <= 120 for p in pieces) and len(pieces) > 3
    assert " ".join(pieces).split() == long.split()
    assert sentences("") == []


def test_short_pieces_join_the_next_one_in_one_place():
    """The minimum length for speech is one rule: the stream splitter's default is MIN_CHARS too."""
    assert SentenceSplitter().min_chars == MIN_CHARS
    assert pieces("Hi. Ok. This is a longer sentence. Yes!", MIN_CHARS) == [
        "Hi. Ok. This is a longer sentence.",
        "Yes!",
    ]


def test_split_message_prefers_sentence_ends_and_keeps_every_word():
    text = "One two three. Four five six seven eight. Nine."
    pieces = split_message(text, 20)
    assert pieces == ["One two three.", "Four five six seven", "eight. Nine."]
    assert all(len(p) <= 20 for p in pieces) and " ".join(pieces) == text
    assert split_message("Line one.\nLine two.", 100) == ["Line one.\nLine two."]
    assert split_message("x" * 12, 5) == ["xxxxx", "xxxxx", "xx"]
    with pytest.raises(ValueError):
        split_message("x", 0)


def test_split_message_does_not_cut_after_an_abbreviation():
    assert split_message("Ask Dr. Smith about the results today.", 20) == ["Ask Dr. Smith about", "the results today."]
    assert split_message("It is 3.14 or so, e.g. pi. Fine.", 28) == ["It is 3.14 or so, e.g. pi.", "Fine."]


# Words that make sentence ends hard: abbreviations, numbers, addresses, code, quotes, CJK, markup.
WORDS = [
    "Dr.", "e.g.", "i.e.", "etc.", "5", "p.m.", "U.S.", "3.14", "v1.2.3", "https://ex.com/a.b", "a.b@c.org", "...", "…",
    "。", "！", "？", "`a.b()`", "```\nx. Y\n```", '"', "”", ")", "(", "\n", "\n\n", "Ok.", "Then", "then", "It", "is",
    "fine.", "Why?", "Yes!", "本当", "です。", "Mr.", "St.", "No.", "1.", "A.", "x.Y", "Hi.Then", "*bold*.", "#", "-",
    "vs.",
]  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_stream_output_does_not_depend_on_chunking_for_random_text(seed: int) -> None:
    """Property: for random word salads, random chunk sizes give the sentences of the whole text."""
    rng = random.Random(seed)
    for _ in range(40):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40)))
        for min_chars in (0, MIN_CHARS):
            assert chunked(text, rng, min_chars) == pieces(text, min_chars), text


@pytest.mark.parametrize(
    "text",
    [
        "Inc. ？ p.m. Dr.    。 Fig. v1.2.3",
        "Yes! - e.g. # fine. `a.b()`    Inc. ？ \n\n U.S. - e.g. < e.g. 。 ！ vs. p.m. Hi.Then i.e.",
    ],
)
def test_sentences_already_returned_stay_context_for_the_next_cut(text: str) -> None:
    """sentencex reads the line before a cut too; fed one character at a time, the stream keeps it."""
    splitter = SentenceSplitter(0)
    assert [p for ch in text for p in splitter.feed(ch)] + splitter.flush() == pieces(text)


FIRST_CLAUSE = (
    "The moon is roughly 384,000 kilometers away, which is about thirty Earths lined up. "
    "It takes light about 1.3 seconds to get here."
)


def test_a_reply_may_start_with_its_first_clause_however_it_is_chunked():
    want = [
        "The moon is roughly 384,000 kilometers away,",  # not at "384,000": no space after
        "which is about thirty Earths lined up.",
        "It takes light about 1.3 seconds to get here.",
    ]
    rng = random.Random(7)
    for _ in range(100):
        splitter, out, i = SentenceSplitter(first_clause_chars=24), [], 0
        while i < len(FIRST_CLAUSE):
            n = rng.randint(1, 9)
            out += splitter.feed(FIRST_CLAUSE[i : i + n])
            i += n
        assert out + splitter.flush() == want
    assert (
        SentenceSplitter().feed(FIRST_CLAUSE)[0]
        == "The moon is roughly 384,000 kilometers away, which is about thirty Earths lined up."
    )


def test_only_the_first_piece_is_a_clause_and_only_a_long_enough_one():
    splitter = SentenceSplitter(first_clause_chars=24)
    assert splitter.feed("Well, yes, I think that the answer, in short, is no. Then, later, more") == [
        "Well, yes, I think that the answer,",  # "Well," and "Well, yes," are too short to go alone
        "in short, is no.",
    ]
    assert splitter.flush() == ["Then, later, more"]
    assert SentenceSplitter(first_clause_chars=24).feed("Run `a, b = f(x, y)` and its friends first, then go") == [
        "Run `a, b = f(x, y)` and its friends first,"  # never inside code
    ]


def realtime(text: str, sizes: random.Random | None = None) -> list[str]:
    """The pieces of the realtime session's splitter (`core.reply` with clause_pieces=2) for `text`
    fed whole, or in random chunks of 1-7 characters with `sizes`."""
    splitter, out, i = SentenceSplitter(first_clause_chars=MIN_CHARS, clause_pieces=2), [], 0
    while i < len(text):
        n = sizes.randint(1, 7) if sizes else len(text)
        out += splitter.feed(text[i : i + n])
        i += n
    return out + splitter.flush()


PHRASE = [
    # (text, the realtime splitter's pieces): long first sentences of real replies in `june bench
    # realtime` (1.0-1.7 s to the first piece's text when it waited for the whole sentence)
    (
        "Cats are very intelligent and can be very loyal. They also sleep a lot during the day.",
        ["Cats are very intelligent", "and can be very loyal.", "They also sleep a lot during the day."],
    ),
    (
        "Try to lie down with your eyes closed and avoid using screens.",
        ["Try to lie down", "with your eyes closed and avoid using screens."],  # "to" is not a break
    ),
    (
        "The moon is approximately 384,400 kilometers away from Earth. Light takes about a second.",
        ["The moon is approximately 384,400 kilometers away", "from Earth. Light takes about a second."],
    ),
    (
        "Sleeping better can help improve your overall health and wellbeing in many ways.",
        ["Sleeping better can help improve your overall health", "and wellbeing in many ways."],
    ),
    # a short sentence before leads the first piece, which may still end at a phrase
    ("Hi! Cats are very intelligent and loyal.", ["Hi! Cats are very intelligent", "and loyal."]),
    # unchanged: no break word ("of" and "to" bind), a SOFT_CLAUSE word or a clause mark comes first
    ("The capital of Germany is Berlin. It is big.", ["The capital of Germany is Berlin.", "It is big."]),
    (
        "One of the biggest benefits of regular exercise is better sleep.",
        ["One of the biggest benefits of regular exercise is better sleep."],
    ),
    ("You might want to try going to bed earlier.", ["You might want to try going to bed earlier."]),
    (
        "The sky is blue because of the way air scatters light.",
        ["The sky is blue", "because of the way air scatters light."],
    ),
    (
        "For dinner tonight, you could make a nice pasta with fresh tomatoes and basil.",
        ["For dinner tonight,", "you could make a nice pasta with fresh tomatoes and basil."],  # first piece only
    ),
    # under FIRST_PHRASE_WORDS words, or MIN_CHARS characters, before the break word
    ("Salt and pepper.", ["Salt and pepper."]),
    ("Go with it.", ["Go with it."]),
    ("Cats are intelligent and loyal animals.", ["Cats are intelligent and loyal animals."]),  # 3 words
    ("We are all set and ready to go now.", ["We are all set", "and ready to go now."]),  # 4 words, 14 chars
    ("I do it all and then I rest a bit.", ["I do it all and then I rest a bit."]),  # 4 words, 11 chars
    # "and"/"or" closing a pair is not a break
    ("Most adults need between 7 and 9 hours of sleep.", ["Most adults need between 7 and 9 hours of sleep."]),
    ("It usually takes me one or two hours.", ["It usually takes me one or two hours."]),
    ("Cats are both playful and independent.", ["Cats are both playful and independent."]),
    # only the first piece: the second keeps the clause rule
    (
        "The capital of Germany is Berlin. Cats are very intelligent and can be very loyal.",
        ["The capital of Germany is Berlin.", "Cats are very intelligent and can be very loyal."],
    ),
    # never inside code (inline code is one word), CJK has no spaces to break at
    (
        "Please run `make all and test` first before you deploy it.",
        ["Please run `make all and test` first", "before you deploy it."],
    ),
    ("Run `make all and test with care` now.", ["Run `make all and test with care` now."]),
    ("Please write to me@example.com and I answer.", ["Please write to me@example.com", "and I answer."]),
    ("東京は日本の首都で世界でも有数の大都市です。", ["東京は日本の首都で世界でも有数の大都市です。"]),
]


@pytest.mark.parametrize(("text", "want"), PHRASE, ids=[text[:30] for text, _ in PHRASE])
def test_the_first_piece_may_end_at_a_phrase_however_the_text_is_chunked(text: str, want: list[str]) -> None:
    """A reply's first piece, when no sentence end or clause came first, may end before "and", "or"
    or a preposition once it holds FIRST_PHRASE_WORDS words and MIN_CHARS characters, so a long
    first sentence without a comma is not waited for whole; later pieces keep the clause rule."""
    assert realtime(text) == want
    rng = random.Random(11)
    for _ in range(30):
        assert realtime(text, rng) == want


# Words for random replies: sentence ends, clause marks, SOFT_CLAUSE and phrase-break words, words
# that are neither ("of", "to"), numbers and code.
REPLY_WORDS = [
    "The", "cats", "sleep", "a", "lot", "of", "to", "and", "or", "with", "from", "in", "because", "that", "but",
    "between", "7", "one", "here,", "well;", "—", "Dr.", "5", "p.m.", "Ok.", "Yes!", "Why?", "`a and b`", "\n",
    "https://ex.com/a", "本当", "です。", "、",
]  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_the_realtime_pieces_do_not_depend_on_chunking_for_random_replies(seed: int) -> None:
    """Property: for random replies, the realtime splitter's clause and phrase pieces are the same
    however the text is chunked, and they keep every word."""
    rng = random.Random(seed)
    for _ in range(60):
        text = " ".join(rng.choice(REPLY_WORDS) for _ in range(rng.randint(3, 40)))
        whole = realtime(text)
        assert realtime(text, rng) == whole, text
        assert " ".join(whole).split() == text.split()


# --- The first clause said on its own (speech's JUNE_SPEECH_TTS_LEAD_CLAUSE) -------------------


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


SOFT = [
    # (text, first piece cut at a clause (lead_clause), the stream's first piece with
    # first_clause_chars=MIN_CHARS, which may also end at a phrase; None: the whole first sentence):
    # seen in `june bench realtime`, where a long first sentence without a comma kept the first
    # audio waiting for all of it (2.3 s of TTS).
    (
        "The sky is blue because sunlight scatters off the air. Blue scatters most.",
        "The sky is blue",
        "The sky is blue",
    ),
    (
        "One of the most famous facts about cats is that they sleep a lot.",
        "One of the most famous facts about cats is",
        "One of the most famous facts",  # a phrase break comes first
    ),
    ("It rains a lot here, but the summers are warm and long.", "It rains a lot here,", "It rains a lot here,"),
    # "and" joins nouns: not a clause, but the first piece may end there after four words
    ("You can add some salt and pepper to taste before serving it.", None, "You can add some salt"),
    ("I think that it will rain later this evening.", None, None),  # "I think" is under MIN_CHARS
    ("The thatched roof kept everyone dry all winter.", None, None),  # a word that starts with "that"
    # never inside code
    ("Use `if x but y` in the code when it is ready.", "Use `if x but y` in the code", "Use `if x but y` in the code"),
    (
        "Please run `make clean because it helps` first, then build it.",
        "Please run `make clean because it helps` first,",
        "Please run `make clean because it helps` first,",
    ),
]


@pytest.mark.parametrize(("text", "first"), [(text, first) for text, _, first in SOFT])
def test_the_first_piece_may_end_before_a_conjunction_however_the_text_is_chunked(text: str, first: str | None) -> None:
    whole = SentenceSplitter(first_clause_chars=MIN_CHARS)
    expected = whole.feed(text) + whole.flush()
    assert expected[0] == (first if first is not None else sentences(text)[0])
    rng = random.Random(3)
    for _ in range(30):
        splitter, out, i = SentenceSplitter(first_clause_chars=MIN_CHARS), [], 0
        while i < len(text):
            n = rng.randint(1, 7)
            out += splitter.feed(text[i : i + n])
            i += n
        assert out + splitter.flush() == expected


def test_the_first_two_pieces_may_be_clauses_however_the_text_is_chunked() -> None:
    """Realtime replies speak their first two pieces as clauses, so the second's audio is not left
    waiting for the end of a long sentence while the first one plays."""
    text = "For dinner tonight, you could make a pasta with tomatoes, garlic and basil, or a salad. Enjoy it!"
    want = [
        "For dinner tonight,",
        "you could make a pasta with tomatoes,",
        "garlic and basil, or a salad.",
        "Enjoy it!",
    ]
    whole = SentenceSplitter(first_clause_chars=MIN_CHARS, clause_pieces=2)
    assert whole.feed(text) + whole.flush() == want
    one = SentenceSplitter(first_clause_chars=MIN_CHARS)
    assert one.feed(text) + one.flush() == [want[0], " ".join(want[1:3]), want[3]]
    rng = random.Random(5)
    for _ in range(30):
        splitter, out, i = SentenceSplitter(first_clause_chars=MIN_CHARS, clause_pieces=2), [], 0
        while i < len(text):
            n = rng.randint(1, 7)
            out += splitter.feed(text[i : i + n])
            i += n
        assert out + splitter.flush() == want


@pytest.mark.parametrize(("text", "first"), [(text, first) for text, first, _ in SOFT])
def test_lead_clause_cuts_before_a_conjunction_as_the_stream_does(text: str, first: str | None) -> None:
    pieces = lead_clause(sentences(text))
    assert pieces[0] == (first if first is not None else sentences(text)[0])
    assert " ".join(pieces) == " ".join(sentences(text))


def test_lead_clause_and_the_stream_cut_at_the_same_clause_marks_cjk_included():
    assert lead_clause(["はい、わかりました。すぐに始めます。"]) == ["はい、", "わかりました。すぐに始めます。"]
    text = "東京は日本の首都で、世界でも有数の大都市として知られていますね、とても大きいです。"
    assert (
        SentenceSplitter(first_clause_chars=24).feed(text)[0]
        == "東京は日本の首都で、世界でも有数の大都市として知られていますね、"
    )


@pytest.mark.parametrize(
    "text",
    [
        FIRST_CLAUSE,
        *(text for text, first, _ in SOFT if first is not None),
        "Well, yes, I think that the answer, in short, is no.",
        "Sure, the sky is blue because sunlight scatters, mostly in the blue part of the spectrum.",
        "For dinner tonight, you could make a pasta with tomatoes, garlic and basil, or a salad. Enjoy it!",
        *(text for text, want in PHRASE if want[0][-1] not in ".!?"),
    ],
)
def test_a_first_clause_the_stream_cut_is_not_cut_again_by_speech(text: str) -> None:
    """One first-clause rule: the realtime stream's clause pieces go to speech one request each, and
    speech (`lead_clause`) leaves a piece that already ends at a clause whole; a whole sentence the
    stream left whole gets its first clause cut there, once."""
    splitter = SentenceSplitter(first_clause_chars=MIN_CHARS, clause_pieces=2)
    pieces = splitter.feed(text) + splitter.flush()
    clauses = [p for p in pieces[:2] if p[-1] not in ".!?"]
    assert clauses, pieces
    for piece in clauses:
        assert lead_clause(sentences(piece)) == [piece]
    assert lead_clause(["Sure, I can help with that."]) == ["Sure,", "I can help with that."]


def test_speech_cuts_no_phrase_since_it_cannot_tell_a_first_piece() -> None:
    """Speech gets each piece of a realtime or bot reply as a request of its own, so a phrase break
    there would cut every sentence of a reply: it stays the stream's, for the reply's first piece."""
    text = "Cats are very intelligent and can be very loyal."
    assert lead_clause([text]) == [text]
    assert realtime(text)[0] == "Cats are very intelligent"
