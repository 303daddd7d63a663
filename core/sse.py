"""Server-sent events as OpenAI streams them: ``data: {json}`` lines, blank-line separated, ending
with ``data: [DONE]`` (https://html.spec.whatwg.org/multipage/server-sent-events.html).

The one place june reads ``data:`` lines by hand: the gateway's usage scan (bytes, on a stream it
relays untouched) and `june smoke`'s stream check (text, counting chunks up to ``[DONE]``). Clients
that only want the chunks use the `openai` SDK, which parses them itself (`core.voice`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import AnyStr

__all__ = ["DONE", "data_fields"]

DONE = "[DONE]"
"""The payload of OpenAI's last event: the stream ended normally."""


def data_fields(lines: Iterable[AnyStr]) -> Iterator[AnyStr]:
    """The payload of each ``data:`` line in `lines` (str or bytes, line breaks removed), stripped of
    surrounding whitespace; blank separators, ``:`` comments and ``event:`` / ``id:`` / ``retry:``
    fields are skipped. Multi-line data (several ``data:`` lines in one event) comes out line by line,
    which OpenAI-style streams never send."""
    for line in lines:
        if line[:5] in ("data:", b"data:"):
            yield line[5:].strip()
