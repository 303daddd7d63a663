"""What is read aloud: an LLM reply without Markdown syntax, code blocks, URLs, HTML tags or emoji.

LLM replies arrive as Markdown with emoji; a TTS engine would spell out "asterisk", "hash" or an
emoji's name. `speakable` keeps the words (speech, the voice pipeline and the realtime session).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["speakable"]

_FENCE = re.compile(r"```.*?(```|$)", re.S)  # code blocks are not read; unterminated ones to the end
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_URL = re.compile(r"https?://\S+")
_HTML = re.compile(r"</?[a-zA-Z][^>]*>")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*", re.M)
_QUOTE = re.compile(r"^\s*>+\s?", re.M)
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+", re.M)
_RULE = re.compile(r"^\s*(?:[-*_]\s*){3,}$", re.M)
_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{3,}.*$", re.M)
_EMPHASIS = re.compile(r"(\*{1,3}|_{2,3}|~~)(?=\S)(.+?)(?<=\S)\1")
_MARKS = re.compile(r"[`*#|~]|(?<!\w)_|_(?!\w)")
_SPACES = re.compile(r"[ \t]+")
# Emoji and pictographs: "So" symbols plus joiners/selectors/skin tones/keycap that belong to them.
_EMOJI_EXTRA = {"\u200d", "\ufe0e", "\ufe0f", "\u20e3"}


def _strip_emoji(text: str) -> str:
    return "".join(
        ch
        for ch in text
        if ch not in _EMOJI_EXTRA
        and not (unicodedata.category(ch) == "So" or 0x1F3FB <= ord(ch) <= 0x1F3FF or 0xE0020 <= ord(ch) <= 0xE007F)
    )


def speakable(text: str) -> str:
    """`text` without Markdown syntax, code blocks, URLs, HTML tags or emoji; line breaks kept.

    Link and emphasis text is kept ("[docs](http://x)" → "docs", "**bold**" → "bold").
    May return "" (e.g. for "🎉" or a code block only).
    """
    text = _FENCE.sub(" ", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub(" ", text)
    text = _HTML.sub(" ", text)
    text = _RULE.sub("", text)
    text = _TABLE_SEP.sub("", text)
    text = _HEADING.sub("", text)
    text = _QUOTE.sub("", text)
    text = _BULLET.sub("", text)
    for _ in range(2):  # nested emphasis such as ***x*** or **_x_**
        text = _EMPHASIS.sub(r"\2", text)
    text = _MARKS.sub(" ", text)
    text = _strip_emoji(text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line)
