"""Reasoning removed from an LLM's content: whole (`strip_reasoning`) or as it streams (`VisibleStream`).

Reasoning models (Qwen3) may put ``<think>…</think>`` in the content; what the bots store and show,
the realtime session's text and the coding agent's next prompt never carry it.
"""

from __future__ import annotations

import re

__all__ = ["VisibleStream", "strip_reasoning"]

# <think> and </think>, any case, with stray whitespace inside the brackets ("< /think >").
_TAG = re.compile(r"<\s{0,2}(/?)\s{0,2}think\s{0,2}>", re.I)
_BLOCK = re.compile(_TAG.pattern.replace("(/?)", "") + r".*?" + _TAG.pattern.replace("(/?)", "/"), re.I | re.S)
# What the end of a delta may hold of a tag still being streamed ("<", "</thi", "<think ").
_PARTIAL_TAG = re.compile(r"<\s{0,2}/?\s{0,2}(?:t(?:h(?:i(?:n(?:k\s{0,2})?)?)?)?)?", re.I)


def strip_reasoning(content: str) -> str:
    """`content` without reasoning, stripped: ``<think>…</think>`` blocks removed, then

    - an unterminated ``<think>`` drops everything after it (the model ran out of tokens mid-thought),
    - a stray ``</think>`` drops everything before it (chat templates such as Qwen3's open the block
      in the prompt, so only the closing tag reaches the content).

    Tags match in any case and with whitespace inside ("<THINK>", "</ think>"). Used for what the
    bots store and show, the realtime session's final text and the coding agent's next prompt.
    """
    text = _BLOCK.sub("", content)
    closes = [m for m in _TAG.finditer(text) if m.group(1)]
    if closes:
        text = text[closes[-1].end() :]
    if opened := _TAG.search(text):
        text = text[: opened.start()]
    return text.strip()


class VisibleStream:
    """Turns streamed content deltas into the text the user may see, reasoning cut out on the fly.

    ``feed(delta)`` returns the newly visible text; ``feed("", final=True)`` ends the stream. Text
    inside ``<think>…</think>`` is held back and dropped once the block closes; a possibly partial
    tag at the end (``"<thi"``) is held until the next delta decides it. A stray ``</think>``
    (template-opened reasoning) discards what came before it that was not yet returned;
    `strip_reasoning` on the whole content stays the reference for what is stored.
    """

    def __init__(self) -> None:
        self._pending = ""  # received, not yet decided
        self._in_think = False

    def feed(self, delta: str, *, final: bool = False) -> str:
        self._pending += delta
        out: list[str] = []
        while self._pending:
            # In reasoning only its end counts; outside, an opening or a stray closing tag.
            tag = next((m for m in _TAG.finditer(self._pending) if m.group(1) or not self._in_think), None)
            if self._in_think:
                if tag is None:
                    # Keep only a possible partial closing tag; the rest is reasoning.
                    self._pending = self._pending[len(self._pending) - _partial_tag_suffix(self._pending) :]
                    break
                self._pending = self._pending[tag.end() :]
                self._in_think = False
                continue
            if tag is not None and tag.group(1):
                out.clear()  # reasoning opened by the template: what came before was thinking
                self._pending = self._pending[tag.end() :]
                continue
            if tag is not None:
                out.append(self._pending[: tag.start()])
                self._pending = self._pending[tag.end() :]
                self._in_think = True
                continue
            keep = 0 if final else _partial_tag_suffix(self._pending)
            out.append(self._pending[: len(self._pending) - keep])
            self._pending = self._pending[len(self._pending) - keep :]
            break
        if final:
            self._pending = ""
        return "".join(out)


def _partial_tag_suffix(text: str) -> int:
    """Length of the suffix of `text` that may still become a think tag (0 if none)."""
    start = text.rfind("<", max(0, len(text) - 16))
    return len(text) - start if start >= 0 and _PARTIAL_TAG.fullmatch(text, start) else 0
