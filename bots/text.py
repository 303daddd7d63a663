"""Pure text helpers for the bots: reasoning removal (whole and streamed), sentences, message splitting.

No I/O and no bot library: the pipeline, both bots and the benchmarks share these. What is read
aloud is decided by `core.text.speakable`, the speech service's own rule (stdlib only).
"""

from __future__ import annotations

import math
import re

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
# A sentence ends at . ! ? … (optionally followed by closing quotes/brackets) and then whitespace,
# or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+|\n+")
_OPEN, _CLOSE = "<think>", "</think>"


def strip_reasoning(content: str) -> str:
    """`content` without reasoning: ``<think>…</think>`` blocks removed, then

    - an unterminated ``<think>`` drops everything after it (the model ran out of tokens mid-thought),
    - a stray ``</think>`` drops everything before it (chat templates that open the block in the
      prompt, so only the closing tag reaches the content).
    """
    text = _THINK_BLOCK.sub("", content)
    lower = text.lower()
    if _CLOSE in lower:
        text = text[lower.rindex(_CLOSE) + len(_CLOSE) :]
        lower = text.lower()
    if _OPEN in lower:
        text = text[: lower.index(_OPEN)]
    return text.strip()


def approx_tokens(text: str) -> int:
    """Rough token count of `text`: one token per 4 characters (OpenAI's rule of thumb for English).

    Good enough to bound history; no tokenizer download, the same for every model.
    """
    return math.ceil(len(text) / 4)


class VisibleStream:
    """Turns streamed content deltas into the text the user may see, reasoning cut out on the fly.

    ``feed(delta)`` returns the newly visible text. Text inside ``<think>…</think>`` is held back
    and dropped once the block closes; a possibly partial tag at the end (``"<thi"``) is held until
    the next delta decides it. A stray ``</think>`` (template-opened reasoning) discards what came
    before it that was not yet returned; `strip_reasoning` on the whole content stays the reference
    for what is stored.
    """

    def __init__(self) -> None:
        self._pending = ""  # received, not yet decided
        self._in_think = False

    def feed(self, delta: str, *, final: bool = False) -> str:
        self._pending += delta
        out: list[str] = []
        while self._pending:
            lower = self._pending.lower()
            if self._in_think:
                end = lower.find(_CLOSE)
                if end < 0:
                    # Keep only a possible partial closing tag; the rest is reasoning.
                    keep = _partial_tag_suffix(lower, _CLOSE)
                    self._pending = self._pending[len(self._pending) - keep :] if keep else ""
                    break
                self._pending = self._pending[end + len(_CLOSE) :]
                self._in_think = False
                continue
            start, stray = lower.find(_OPEN), lower.find(_CLOSE)
            if stray >= 0 and (start < 0 or stray < start):
                out.clear()  # reasoning opened by the template: what came before was thinking
                self._pending = self._pending[stray + len(_CLOSE) :]
                continue
            if start >= 0:
                out.append(self._pending[:start])
                self._pending = self._pending[start + len(_OPEN) :]
                self._in_think = True
                continue
            keep = 0 if final else max(_partial_tag_suffix(lower, _OPEN), _partial_tag_suffix(lower, _CLOSE))
            out.append(self._pending[: len(self._pending) - keep])
            self._pending = self._pending[len(self._pending) - keep :]
            break
        return "".join(out)


def _partial_tag_suffix(lower: str, tag: str) -> int:
    """Length of the longest suffix of `lower` that is a proper prefix of `tag` (0 if none)."""
    for n in range(min(len(tag) - 1, len(lower)), 0, -1):
        if lower.endswith(tag[:n]):
            return n
    return 0


class SentenceSplitter:
    """Cuts streamed text into sentences as soon as each one is complete.

    ``feed(text)`` returns the sentences finished so far (stripped, never empty); ``flush()`` returns
    the remainder. Sentences shorter than `min_chars` are joined to the next one, so "Hi." or
    "Dr." does not become its own speech request. A Markdown code fence (```) is never cut: the
    block comes out whole once it closes, so `core.text.speakable` sees it as code.
    """

    def __init__(self, min_chars: int = 24) -> None:
        self.min_chars = min_chars
        self._buffer = ""

    def feed(self, text: str) -> list[str]:
        self._buffer += text
        sentences: list[str] = []
        start = 0
        for match in _SENTENCE_END.finditer(self._buffer):
            candidate = self._buffer[start : match.end()].strip()
            if len(candidate) >= self.min_chars and candidate.count("```") % 2 == 0:  # no fence left open
                sentences.append(candidate)
                start = match.end()
        self._buffer = self._buffer[start:]
        return sentences

    def flush(self) -> list[str]:
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []


def split_message(text: str, limit: int) -> list[str]:
    """`text` in pieces of at most `limit` characters, cut after a sentence end where possible.

    Without a sentence end in reach a piece is cut at the last whitespace, and a word longer than
    `limit` mid-word. Text within a piece is kept as is (line breaks included); whitespace at the
    cuts is dropped, so joining the pieces with single spaces gives `text` back up to whitespace.
    """
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[: limit + 1]
        ends = [m.end() for m in _SENTENCE_END.finditer(window) if m.start() <= limit]
        cut = ends[-1] if ends else max(window.rfind(" "), window.rfind("\n"))
        if cut <= 0:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces
