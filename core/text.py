"""The one sentence splitter that speech, the bots, the realtime session and message splitting share.

Text is cut into pieces small enough to synthesize one by one, so the first is spoken while the rest
are still generated or synthesized: `SentenceSplitter` on a stream (the bots' overlap, the realtime
session), `sentences` on whole text (the speech service), `split_message` for chat-message limits.
All three use the same boundaries (`_boundaries`); `lead_clause` and the stream share one
first-clause rule (`_clause_end`: a clause mark or a SOFT_CLAUSE word), to which the stream adds a
phrase break (PHRASE_BREAK: "and", "with", "from"...) for a reply's first piece only, where speech
cannot tell a reply's first piece from its others. (What is read aloud is core.speakable;
reasoning, core.reasoning.)

Where a sentence ends is decided by sentencex (Wikimedia, PyPI; Rust, no dependencies, ~4 MB,
≈0.5 ms per 1000 characters): it knows abbreviations ("e.g.", "Dr.", "5 p.m.", "U.S.", "etc."),
decimals and versions, URLs, ellipses and CJK end marks (。！？) in ~300 languages. pysbd (last
release 2021) cuts inside URLs and code, blingfire (2021) misses "U.S." and e-mail addresses, nltk's
punkt needs a data download, and a hand-written rule set is what gave june two splitters that both
cut "i.e." and "5 p.m.". None of them streams, so around it this module adds:

- code is never cut: fenced blocks and inline `code` (URLs and e-mail addresses too) are masked
  before sentencex sees the text, so a fence comes out whole inside one piece;
- a line break always ends a piece (list items and headings have no end mark);
- a boundary is kept only where whitespace follows the end mark (after closing quotes/brackets,
  which stay with their sentence), or after a CJK end mark, so "a.b" and "Hi.Then" are not cut;
- streaming: a boundary counts once the whole next word has arrived (sentencex looks at it to tell
  "5 p.m. Then" from "5 p.m. today") and no code span is open, so the output does not depend on
  how the text was chunked (tests/core/test_text.py checks random chunkings).
"""

from __future__ import annotations

import functools
import re

from sentencex import get_sentence_boundaries

__all__ = [
    "CLAUSE_MARK",
    "FIRST_PHRASE_WORDS",
    "MIN_CHARS",
    "PHRASE_BREAK",
    "SOFT_CLAUSE",
    "SentenceSplitter",
    "lead_clause",
    "sentences",
    "split_message",
]

MIN_CHARS = 12
"""Pieces shorter than this are joined to the next one, for speech, the bots and the realtime path:
each synthesis call has a fixed cost and a lone "Hi." or "Ok." sounds clipped from Kokoro."""

_LANGUAGE = "en"  # sentencex's English rules; CJK end marks are cut in every language
# Code (fenced, inline, a backtick run still arriving), URLs and e-mail addresses: never cut inside.
_CODE = re.compile(r"`+\Z|```.*?(?:```|\Z)|`[^`\n]*(?:`|\Z)", re.S)
_ADDRESS = re.compile(r"(?:https?://|www\.)[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]}]|[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_CLOSERS = set("\"'”’»)]}」』）】〕〉》")
_QUOTES = _CLOSERS | set("“‘«([{「『（【〔〈《")
# Two whole words after a cut (quotes and brackets aside): sentencex looks that far ahead after an
# abbreviation ("p.m. St. Inc." is cut after "p.m.", "p.m. St. Paul" is not).
_NEXT_WORDS = re.compile("(?:[\\s%s]*[^\\s%s]\\S*\\s){2}" % ((re.escape("".join(sorted(_QUOTES))),) * 2))
_CJK_ENDS = set("。！？｡．")
_END_MARKS = set(".!?…‼⁇⁈⁉") | _CJK_ENDS
CLAUSE_MARK = re.compile(r"[,;:]\s+|\s+[—–-]\s+|[、，；：]\s*")
"""Where a clause ends: a comma, semicolon or colon and a space, a dash between spaces, or a CJK
clause mark. "1,000" and "well-known" are not clause ends."""

SOFT_CLAUSE = re.compile(
    r"\s+(?=(?:because|which|who|whom|whose|when|whenever|while|whereas|where|if|since|although|though|unless|until|but|that)\s)",
    re.IGNORECASE,
)
"""Where a clause can start without a mark: the space before a subordinating conjunction, a relative
word or "but" ("The sky is blue | because …", "… about cats is | that they …"). "and", "or" and "so"
are left out: they join nouns ("salt and pepper") and adverbs ("so much") as often as clauses. English
words; a cut here is a pause a speaker could make, used only for a reply's first piece."""

FIRST_PHRASE_WORDS = 4
"""Words (and MIN_CHARS characters) a reply's first piece needs before it may end at a PHRASE_BREAK.
Four words is about 1.5 s of speech and 5-6 tokens of the LLM (≈0.35 s at 60 ms a token on the
2-core box), as long as "To improve sleep quality," (0.54 s to its text), so the second piece can
be generated and synthesized while it plays. The long first sentences of real replies (`june bench
realtime`: 0.9-1.7 s to the first piece's text) break after four to eight words: "Cats are very
intelligent | and …", "Try to lie down | with …", "The moon is approximately 384,400 kilometers
away | from Earth.", "Sleeping better can help improve your overall health | and …"; five would
miss "Try to lie down" (then "… with your eyes closed | and", eight words), three would cut "Cats
love sleeping | in …", a first piece so short that the LLM falls behind its audio."""

PHRASE_BREAK = re.compile(
    r"\s+(?=(?:(?P<pair>and|or|nor)|with|without|within|from|for|in|into|on|onto|at|by|about|after|before|during"
    r"|through|throughout|across|along|among|around|against|between|behind|beyond|despite|except"
    r"|including|toward|towards|under|upon|via)\s)",
    re.IGNORECASE,
)
"""Where a reply's first piece may end once it holds FIRST_PHRASE_WORDS words, when no sentence end,
clause mark or SOFT_CLAUSE word came first: the space before "and", "or", "nor" (SOFT_CLAUSE leaves
them out because they join nouns; "Salt and pepper" is under the word count) or before a preposition
that starts a phrase a speaker can pause before ("… kilometers away | from Earth"). Left out: "of"
and "to" bind to the word before ("the capital | of France", "try | to sleep"), "as" and "than"
compare ("twice as | fast"), "like" is a verb as often ("I would like | to"), "up", "out", "off" and
"over" are verb particles ("turn | off the light") or mean "more than". A phrase break is a
weaker pause than a clause, so only the reply's first piece takes one (the stream's; speech's
`lead_clause` does not, see there). English words, as in SOFT_CLAUSE. Not before "and"/"or"/"nor"
that close a pair (_PAIRED): "between 7 | and 9 hours", "one | or two", "both cats | and dogs"."""

_PAIRED = re.compile(
    r"(?:\d\S*|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty"
    r"|sixty|seventy|eighty|ninety|hundred|thousand|million|billion))\s*\Z"
    r"|\b(?:between|both|either|neither)(?:\s+\S+){1,2}\s*\Z",
    re.IGNORECASE,
)
"""The end of text before an "and"/"or"/"nor" that closes a pair: after a number ("7 and 9", "one or
two", "a hundred and fifty") or one or two words after "between", "both", "either", "neither"."""


def _clause_end(masked: str, start: int, end: int, *, min_chars: int = 1, phrase: bool = False) -> int | None:
    """The first-clause rule, the one both the stream (`SentenceSplitter`'s first pieces) and speech
    (`lead_clause`) cut by: where the clause that starts at `start` in `masked` (text with code and
    addresses masked, see `_mask`) ends, before `end`: after the first CLAUSE_MARK that has a word
    and at least `min_chars` characters before it, or at the space before a SOFT_CLAUSE word once
    MIN_CHARS (or `min_chars`, if more) precede it; with `phrase` (a reply's first piece in the
    stream) also at the space before a PHRASE_BREAK word once as many characters and
    FIRST_PHRASE_WORDS words precede it. The earliest of these; None when there is no such place."""
    found: list[int] = []
    rules = [(CLAUSE_MARK, min_chars, 1), (SOFT_CLAUSE, max(MIN_CHARS, min_chars), 1)]
    if phrase:
        rules.append((PHRASE_BREAK, max(MIN_CHARS, min_chars), FIRST_PHRASE_WORDS))
    for rule, least, words in rules:
        for match in rule.finditer(masked, start, end):
            before = masked[start : match.start()]
            if len(before) < least or sum(any(c.isalnum() for c in w) for w in before.split()) < words:
                continue
            if match.groupdict().get("pair") and _PAIRED.search(before):
                continue
            found.append(match.end())
            break
    return min(found, default=None)


def _mask(text: str) -> tuple[str, int]:
    """(`text` with code and addresses replaced by "x" at the same offsets, where the trailing code
    span still open starts, else len(text))."""
    chars = list(text)
    open_at = len(text)
    for match in _CODE.finditer(text):
        span = match.group()
        fence = span.startswith("```") and len(span) >= 6 and span.endswith("```")
        inline = not span.startswith("```") and len(span) >= 2 and span.endswith("`") and span.strip("`")
        if match.end() == len(text) and not (fence or inline):
            open_at = match.start()
        chars[match.start() : match.end()] = "x" * len(span)
    for match in _ADDRESS.finditer("".join(chars)):
        chars[match.start() : match.end()] = "x" * (match.end() - match.start())
    return "".join(chars), open_at


def _line_ends(masked: str, start: int, end: int, *, complete: bool) -> list[int]:
    """Sentence ends in masked[start:end], one line: offsets after the end mark, any closing quotes
    or brackets and the whitespace after them. `complete`: the line will not grow; else an end
    counts once no text appended can undo it (two more words, or a cut whatever word follows), and
    the first end not yet certain stops the list."""
    ends: list[int] = []
    # sentencex pairs quotes and brackets across any distance (an unclosed "(" holds every cut after
    # it), so a stream would cut where the whole text does not: it sees the line without them, and
    # closing ones after an end mark are put back with their sentence below.
    kept = [i for i in range(start, end) if masked[i] not in _QUOTES]
    for found in get_sentence_boundaries(_LANGUAGE, "".join(masked[i] for i in kept)):
        last = found["start_index"] + len(found["text"].rstrip())
        if last == 0:
            continue
        k = kept[last - 1] + 1
        mark = k
        while mark > start and masked[mark - 1] in _CLOSERS:
            mark -= 1
        if mark == start or masked[mark - 1] not in _END_MARKS:
            continue  # the line's last piece, or a cut sentencex made without an end mark
        cjk = masked[mark - 1] in _CJK_ENDS
        while k < end and masked[k] in _CLOSERS:
            k += 1
        if k >= end:
            continue  # the line's last piece: it ends with the line
        if masked[k].isspace():
            while k < end and masked[k].isspace():
                k += 1
            if complete:
                if k >= end:
                    continue  # trailing whitespace: the piece ends with the line
            elif not (_NEXT_WORDS.match(masked, k, end) or _cut_whatever_follows(masked, start, k)):
                break  # not yet certain, so neither is any cut after it
        elif not cjk:
            continue  # "Hi.Then", "a.b": no space after the mark
        if not ends or k > ends[-1]:
            ends.append(k)
    return ends


# Next words that make sentencex decide differently after an abbreviation or end mark ("5 p.m. Then"
# is cut, "5 p.m. today" / "5 p.m. U.S." / "Why? …" are not): lower case, capital, "I", digit,
# CJK, ellipses, markup, abbreviations, dotted words.
_PROBES = ("a", "A", "I", "1", "本", "…", "...", "-", "#", "A.", "U.S.", "e.g.", "a.b", "5.")


def _cut_whatever_follows(masked: str, start: int, k: int) -> bool:
    """Whether sentencex cuts at `k` whatever word comes next (it does after "Paris.", whatever the
    next word; after "p.m." it depends on it). Then the cut needs no wait for the next word, which a
    model sends a token later: "Paris. It" is cut before "It" is complete."""
    return _cuts_before_any_word(masked[start:k])


@functools.lru_cache(maxsize=64)
def _cuts_before_any_word(line: str) -> bool:
    """`_cut_whatever_follows` for a line's text up to the cut (cached: a stream asks again per delta)."""
    return all(len(line) in _line_ends(probe := f"{line}{p} x", 0, len(probe), complete=True) for p in _PROBES)


def _boundaries(text: str, *, final: bool) -> list[int]:
    """Offsets in `text` where a piece ends, in order, each one certain: text appended later (when
    not `final`) cannot move it. The end of `text` is included only when it is such an end."""
    masked, open_at = _mask(text)
    limit = len(text) if final else open_at
    ends: list[int] = []
    start = 0
    while start < limit:
        newline = masked.find("\n", start, limit)
        end = limit if newline < 0 else newline
        ends += _line_ends(masked, start, end, complete=final or newline >= 0)
        if newline < 0:
            break
        start = newline + 1
        if not ends or ends[-1] < start:
            ends.append(start)
    return ends


_CONTEXT_CHARS = 500
"""How much of a line already returned the splitter keeps for sentencex to read: its cuts depend a
little on the text before ("! p.m. St." vs "p.m. St." at a line start), so the stream keeps the line
as the whole text has it, unless the line grows past this (then re-reading it would cost more)."""


class SentenceSplitter:
    """Cuts streamed text into sentences as soon as each one is certain.

    ``feed(text)`` returns the sentences finished so far, ``flush()`` the rest at the end; each
    stripped, never empty. A sentence counts as finished once what follows cannot change the cut:
    at once after "Paris." (sentencex cuts there whatever comes next), two words later after an
    abbreviation ("at 5 p.m. Then we" vs "at 5 p.m. today"), at once at a line break or a CJK end
    mark. Code is never cut: a fenced block comes out whole once it closes, inside one piece, so
    `speakable` sees it as code. Pieces shorter than `min_chars` lead the next piece (joined with a
    space). The pieces are the same however the text is chunked, and the same as
    `sentences(text, max_chars=∞)` up to the last-short-piece rule there.

    With `first_clause_chars`, each of the first `clause_pieces` pieces may end sooner, at a clause
    (`_first_clause`), and the first of them also at a phrase break: with `first_clause_chars` =
    MIN_CHARS and `clause_pieces` = 2 (the realtime session) "Cats are very intelligent and can be
    very loyal." gives "Cats are very intelligent" | "and can be very loyal.", and "For dinner
    tonight, you could make a pasta with tomatoes, garlic …" gives "For dinner tonight," | "you could
    make a pasta with tomatoes," | the rest by sentences.
    """

    def __init__(
        self, min_chars: int = MIN_CHARS, *, first_clause_chars: int | None = None, clause_pieces: int = 1
    ) -> None:
        self.min_chars = min_chars
        self.first_clause_chars = first_clause_chars
        self.clause_pieces = clause_pieces
        self._buffer = ""  # the current line (context) and what is not returned yet
        self._done = 0  # where in _buffer the text not yet returned starts
        self._short = ""  # a finished piece under min_chars, waiting for the next one
        self._returned = 0  # pieces returned

    def feed(self, text: str) -> list[str]:
        out: list[str] = []
        self._buffer += text
        while True:  # each of the first `clause_pieces` pieces may end at a clause, the first at a phrase
            index = self._returned + len(out)
            clauses = bool(self.first_clause_chars) and index < self.clause_pieces
            clause = self._first_clause(phrase=index == 0) if clauses else None
            if clause is not None:
                out += self._take([clause])
                continue
            ends = [end for end in _boundaries(self._buffer, final=False) if end > self._done]
            if not clauses or not ends:
                out += self._take(ends)
                break
            out += self._take(ends[:1])  # one sentence: the text after it may start with a clause too
        self._returned += len(out)
        return out

    def _first_clause(self, *, phrase: bool) -> int | None:
        """With `first_clause_chars`, each of the reply's first `clause_pieces` pieces may end at a
        clause mark ("," ";" ":" "—" and a space, or 、，；：) or before a SOFT_CLAUSE word
        ("because", "that"...) once it holds that many characters and no sentence could end before
        it, so that speech can start before the sentence is complete; with `phrase` (the reply's
        first piece) also before a PHRASE_BREAK word ("and", "with", "from"...) once it holds
        FIRST_PHRASE_WORDS words. Decided on the text up to the mark (or the word and the space after
        it) alone, so chunking still does not change the pieces."""
        masked, open_at = _mask(self._buffer)
        at = _clause_end(
            masked,
            self._done,
            open_at,
            min_chars=max(1, (self.first_clause_chars or 0) - len(self._short)),
            phrase=phrase,
        )
        if at is None or any(self._done < end < at for end in _boundaries(self._buffer[:at], final=True)):
            return None
        return at

    def flush(self) -> list[str]:
        out = self._take([*_boundaries(self._buffer, final=True), len(self._buffer)])
        if self._short:
            out.append(self._short)
            self._short = ""
        self._buffer, self._done, self._returned = "", 0, 0
        return out

    def _take(self, ends: list[int]) -> list[str]:
        out: list[str] = []
        start = self._done
        for end in ends:
            if end <= start:
                continue
            piece, start = self._buffer[start:end].strip(), end
            if not piece:
                continue
            if self._short:
                piece, self._short = f"{self._short} {piece}", ""
            if len(piece) < self.min_chars:
                self._short = piece
            else:
                out.append(piece)
        # Keep the current line as context; lines before it (a line break outside code) are done.
        keep = _mask(self._buffer[:start])[0].rfind("\n") + 1
        if start - keep > _CONTEXT_CHARS:
            keep = start
        self._buffer, self._done = self._buffer[keep:], start - keep
        return out


def lead_clause(pieces: list[str], *, min_rest: int = MIN_CHARS) -> list[str]:
    """`pieces` with the first one cut at its first clause (`_clause_end`, the stream's rule: after
    its first clause mark, ", ", "; ", ": ", " — ", or before a SOFT_CLAUSE word once MIN_CHARS
    precede it), so that clause is synthesized, and its audio sent, on its own: the first audio byte
    then waits for a clause of speech instead of a whole sentence. Synthesis time grows with the
    audio's length, so "Sure, I can help with that." starts after "Sure," (0.6 s of audio) rather
    than all 1.5 s of it, and "The sky is blue because …" after "The sky is blue".

    Not cut when the rest would be shorter than `min_rest` characters ("Yes, sir.": nothing to win,
    and a lone short word sounds clipped), when there is no clause, or when the piece does not end a
    sentence (no end mark at its end): then it is a clause already, one a stream cut (the realtime
    session's `SentenceSplitter(first_clause_chars=...)`), and a first clause is cut once. Only the
    first piece is cut: later ones are synthesized while earlier ones play. Joined with spaces the
    pieces give back the input.

    No phrase break (PHRASE_BREAK) here, unlike the stream's first piece: speech gets each piece of a
    realtime or bot reply as a request of its own, so it would cut every sentence of a reply before
    its "and" or "with", one more synthesis call and one more pause each; the reply's first piece
    already got its phrase break from the stream.
    """
    if not pieces:
        return pieces
    first = pieces[0]
    if first.rstrip("".join(_CLOSERS))[-1:] not in _END_MARKS:
        return pieces
    at = _clause_end(_mask(first)[0], 0, len(first))  # never inside code
    if at is None or len(first[at:].strip()) < min_rest:
        return pieces
    return [first[:at].rstrip(), first[at:].strip(), *pieces[1:]]


def sentences(text: str, *, max_chars: int = 300, min_chars: int = MIN_CHARS) -> list[str]:
    """Split whole `text` into sentences (and lines) for one synthesis call each.

    The `SentenceSplitter`'s pieces; a last piece shorter than `min_chars` also joins the previous
    one (whole text can take it back, a stream cannot). Pieces over `max_chars` are cut at clause
    marks, then at spaces. Joined with spaces the pieces give back the words of `text`.
    """
    splitter = SentenceSplitter(min_chars)
    merged = splitter.feed(text) + splitter.flush()
    if len(merged) > 1 and len(merged[-1]) < min_chars:
        merged[-2:] = [f"{merged[-2]} {merged[-1]}"]
    pieces: list[str] = []
    for raw in merged:
        while len(raw) > max_chars:
            cut = max((m.end() for m in CLAUSE_MARK.finditer(raw, 0, max_chars)), default=0)
            if cut <= 0:
                cut = raw.rfind(" ", 0, max_chars) + 1 or max_chars
            pieces.append(raw[:cut].strip())
            raw = raw[cut:].strip()
        if raw:
            pieces.append(raw)
    return pieces


def split_message(text: str, limit: int) -> list[str]:
    """`text` in pieces of at most `limit` characters, cut after a sentence end where possible.

    Without a sentence end in reach a piece is cut at the last whitespace, and a word longer than
    `limit` mid-word. Text within a piece is kept as is (line breaks included); whitespace at the
    cuts is dropped, so joining the pieces with single spaces gives `text` back up to whitespace.
    Raises ValueError for a `limit` under 1.
    """
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[: limit + 1]
        ends = [end for end in _boundaries(window, final=True) if len(window[:end].rstrip()) <= limit]
        cut = ends[-1] if ends else max(window.rfind(" "), window.rfind("\n"))
        if cut <= 0:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces
