"""Waiting for a busy upstream: how long a caller may wait, and how long the upstream asked.

A 429, or a 503 with ``Retry-After``, means the request was refused before any work was done: it
may be sent again once the wait is over. `retry_after` reads that wait from a response; `patience`
sets, for everything run inside it (tasks started there included, through a context variable),
how long such waits may go on and whom to tell when they grow long. The voice pipeline honours
both (`core.voice_client`); the bots set the patience per message, from its reply deadline.
"""

from __future__ import annotations

import contextlib
import email.utils
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Patience", "current_patience", "patience", "retry_after"]


@dataclass
class Patience:
    """How long the calls made inside a `patience` block may wait for a busy upstream.

    `deadline` is a ``time.monotonic()`` value; `on_busy` (no arguments, must not block: schedule
    work, don't do it) is called once, when one call's waiting for a busy upstream adds up to
    `notice_after` seconds.
    """

    deadline: float
    on_busy: Callable[[], None] | None = None
    notice_after: float = 10.0
    notified: bool = False

    def left(self) -> float:
        """Seconds until the deadline (negative once past)."""
        return self.deadline - time.monotonic()


_patience: ContextVar[Patience | None] = ContextVar("june_patience", default=None)


def current_patience() -> Patience | None:
    """The innermost `patience` block's Patience, None outside any."""
    return _patience.get()


@contextlib.contextmanager
def patience(
    seconds: float, *, on_busy: Callable[[], None] | None = None, notice_after: float = 10.0
) -> Iterator[Patience]:
    """Waits for a busy upstream inside this block (tasks started in it included) end at most
    `seconds` from now; see `Patience` for `on_busy` and `notice_after`."""
    given = Patience(time.monotonic() + seconds, on_busy, notice_after)
    token = _patience.set(given)
    try:
        yield given
    finally:
        _patience.reset(token)


class _HasHeaders(Protocol):
    """What `retry_after` reads of a response: httpx's, or the openai SDK's (typed as httpx2's in openai 3.x)."""

    @property
    def headers(self) -> Mapping[str, str]: ...


def retry_after(response: _HasHeaders) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent or bad."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None
