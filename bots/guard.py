"""Who may talk to a bot and how often: an optional allow-list and a per-user sliding-window limit."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable


class RateLimiter:
    """At most `max_messages` per `window` seconds per user (in this process); 0 disables the limit.

    ``allow(user)`` records the message and says whether it may be processed; refused messages do
    not count. `clock` (monotonic seconds) is injectable for tests.
    """

    def __init__(self, max_messages: int, window: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_messages, self.window = max_messages, window
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}

    def allow(self, user: str) -> bool:
        if self.max_messages <= 0:
            return True
        now = self._clock()
        for key in [k for k, q in self._seen.items() if not q or now - q[-1] > self.window]:
            del self._seen[key]  # forget idle users so the dict stays small
        times = self._seen.setdefault(user, deque())
        while times and now - times[0] > self.window:
            times.popleft()
        if len(times) >= self.max_messages:
            return False
        times.append(now)
        return True


class AllowList:
    """Ids (users or chats, as strings) that may use the bot; an empty list allows everyone."""

    def __init__(self, ids: Iterable[str | int] = ()) -> None:
        self.ids = frozenset(str(i) for i in ids)

    def allows(self, *ids: str | int) -> bool:
        """True when the list is empty or any of `ids` (e.g. user and chat) is on it."""
        return not self.ids or any(str(i) in self.ids for i in ids)
