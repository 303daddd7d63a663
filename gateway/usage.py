"""Reading OpenAI `usage` (token counts) from an answer's body as it is relayed, without changing a byte.

A non-streamed answer carries `usage` in its JSON body; a streamed one (SSE) in its last chunk when
the client asked for `stream_options.include_usage` (vLLM and OpenAI both send it so).
"""

from __future__ import annotations

from typing import Any

import msgspec

from core.sse import data_fields

MAX_JSON_SCAN = 1 << 20
"""Non-streamed bodies up to this size are scanned for `usage`; larger ones are relayed uncounted."""


class _Usage(msgspec.Struct):
    usage: dict[str, Any] | None = None


# A typed decoder reads one field and skips the rest without building it.
_read_usage = msgspec.json.Decoder(_Usage).decode


class UsageScanner:
    """Finds OpenAI `usage` in a response body as it passes, without holding the stream up.

    SSE: each complete event that mentions "usage" is parsed and a non-null usage kept (vLLM sends it
    in the last chunk when the client asked for `stream_options.include_usage`). JSON: the body is
    kept (up to MAX_JSON_SCAN bytes) and parsed at the end.
    """

    def __init__(self, sse: bool) -> None:
        self.sse = sse
        self.buf = bytearray()
        self.usage: dict | None = None
        self.overflow = False

    def feed(self, chunk: bytes) -> None:
        if self.overflow:
            return
        if self.sse and not self.buf and chunk.endswith(b"\n\n") and b'"usage"' not in chunk:
            return  # the usual SSE chunk: whole events, none with usage (the fast path)
        self.buf += chunk
        if not self.sse:
            self.overflow = len(self.buf) > MAX_JSON_SCAN
            return
        while (end := self.buf.find(b"\n\n")) >= 0:
            event = bytes(self.buf[:end])
            del self.buf[: end + 2]
            if b'"usage"' in event:
                self._event(event)

    def _event(self, event: bytes) -> None:
        for data in data_fields(event.splitlines()):
            self._take(data)

    def _take(self, data: bytes | bytearray) -> None:
        try:
            usage = _read_usage(data).usage
        except msgspec.MsgspecError:
            return
        if usage is not None:
            self.usage = usage

    def finish(self) -> dict | None:
        """The last usage seen (call once the body has ended)."""
        if not self.overflow and self.buf:
            if self.sse:
                self._event(bytes(self.buf))
            elif b'"usage"' in self.buf:
                self._take(self.buf)
        self.buf.clear()
        return self.usage
