"""Who may talk to a bot and how often: an optional allow-list and a per-user sliding-window limit."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable


class RateLimiter:
    """At most `max_messages` per `window` seconds per user (in this process); 0 disables the limit.

    ``allow(user)`` records the message and says whether it may be processed; refused messages do
    not count. `clock` (monotonic seconds) is injectable for tests. Users silent for a whole window
    are forgotten; a call costs O(1) plus one step per timestamp or user that expired.
    """

    def __init__(self, max_messages: int, window: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_messages, self.window = max_messages, window
        self._clock = clock
        # Each user's accepted message times (never empty), users ordered by their latest one.
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, user: str) -> bool:
        if self.max_messages <= 0:
            return True
        now = self._clock()
        while self._seen:  # idle users: the oldest latest-message first, so stop at the first active one
            oldest = next(iter(self._seen.values()))
            if now - oldest[-1] <= self.window:
                break
            self._seen.popitem(last=False)
        times = self._seen.get(user) or deque()
        while times and now - times[0] > self.window:
            times.popleft()
        if len(times) >= self.max_messages:
            return False
        times.append(now)
        self._seen[user] = times
        self._seen.move_to_end(user)  # its latest message is now the newest of all
        return True


class AllowList:
    """Ids (users or chats, as strings) that may use the bot; an empty list allows everyone."""

    def __init__(self, ids: Iterable[str | int] = ()) -> None:
        self.ids = frozenset(str(i) for i in ids)

    def allows(self, *ids: str | int) -> bool:
        """True when the list is empty or any of `ids` (e.g. user and chat) is on it."""
        return not self.ids or any(str(i) in self.ids for i in ids)
