"""june's one limiter: requests per window, tokens per window and requests in flight, per key.

Used by the gateway (per API key: requests, completion tokens, concurrency) and the bots (per user:
messages). One design, two backends: counters in this process (`MemoryLimiter`, one replica) or in
Redis (`RedisLimiter`, shared by every replica using the same server and prefix).

Windows are fixed (`floor(now / window_s)`, seconds since the epoch): the same on every replica
(given NTP-synchronised clocks), cheap in Redis (one counter per key and window, INCR + PEXPIRE in
one Lua script, so a counter never outlives its window), and a key can at worst burst 2x the limit
across a window edge. Tokens are counted after the fact (`add_tokens`, e.g. from an upstream's
`usage`), so a request is refused once the window's tokens are spent, not in the middle of a
generation. `clock` (seconds since the epoch) is injectable: tests move time instead of sleeping.

Why not the `limits` package (PyPI): it has no concurrency (in-flight) limit, which the gateway
needs, so a second mechanism would remain beside it; and it reads `time.time()` inside its storage
(Redis: server-side TTLs), so tests could not move its windows without sleeping through them.

Over a limit → `RateLimited` (what, limit, retry_after). This module imports only the standard
library (redis lazily, from the caller's client): the bots use it without a web framework;
`core.web.rate_limit_error` turns it into OpenAI's 429.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Seconds since the epoch (`time.time`); replicas sharing Redis must agree on it."""


@dataclass(frozen=True)
class Limits:
    """What each key may do; None = unlimited."""

    requests: int | None = None
    """Requests (or messages) started per window."""
    completion_tokens: int | None = None
    """Completion tokens per window (counted with `add_tokens`)."""
    concurrent: int | None = None
    """Requests in flight at once (each `admit` held until its `release`)."""
    window_s: float = 60.0
    """Window length in seconds."""

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.requests, self.completion_tokens, self.concurrent))


def _per(window_s: float) -> str:
    return "per minute" if window_s == 60 else f"per {window_s:g} s"


class RateLimited(Exception):
    """A limit refused a request: `what` ("requests per minute"...), its `limit`, and `retry_after`
    (whole seconds until it may succeed, at least 1)."""

    def __init__(self, what: str, limit: int, retry_after: float) -> None:
        self.what, self.limit = what, limit
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"Rate limit reached for {what} (limit {limit}). Please try again in {self.retry_after} s.")


class Limiter(Protocol):
    """Counters for one service (or several replicas sharing a backend)."""

    async def admit(self, key: str) -> None:
        """Count a new request for `key`, or raise RateLimited (then nothing is held or counted)."""

    async def release(self, key: str) -> None:
        """The request admitted for `key` has finished (frees its concurrency slot; a no-op without one)."""

    async def add_tokens(self, key: str, completion_tokens: int) -> None:
        """Count completion tokens a finished request used."""


class _Window:
    """The current fixed window: its index and the seconds left in it."""

    def __init__(self, window_s: float, clock: Clock) -> None:
        now = clock()
        self.index = int(now // window_s)
        self.left = (self.index + 1) * window_s - now


class MemoryLimiter:
    """Counters in this process (one replica). Safe on one event loop: no awaits inside a check.

    Memory is bounded by the keys active in the current window: counters of past windows are
    dropped when a new window starts (one pass over the table per window).
    """

    def __init__(self, limits: Limits, *, clock: Clock = time.time) -> None:
        self.limits = limits
        self.clock = clock
        self._requests: dict[str, tuple[int, int]] = {}  # key → (window index, count)
        self._tokens: dict[str, tuple[int, int]] = {}
        self._inflight: dict[str, int] = {}
        self._index = 0  # the window the tables were last pruned in

    def _window(self) -> _Window:
        window = _Window(self.limits.window_s, self.clock)
        if window.index != self._index:
            self._index = window.index
            for table in (self._requests, self._tokens):
                for key in [k for k, (index, _) in table.items() if index != window.index]:
                    del table[key]
        return window

    @staticmethod
    def _count(table: dict[str, tuple[int, int]], key: str, window: _Window) -> int:
        index, count = table.get(key, (window.index, 0))
        return count if index == window.index else 0

    async def admit(self, key: str) -> None:
        lim = self.limits
        window = self._window()
        if lim.concurrent is not None and self._inflight.get(key, 0) >= lim.concurrent:
            raise RateLimited("concurrent requests", lim.concurrent, 1)
        if lim.completion_tokens is not None and self._count(self._tokens, key, window) >= lim.completion_tokens:
            raise RateLimited(f"completion tokens {_per(lim.window_s)}", lim.completion_tokens, window.left)
        if lim.requests is not None:
            used = self._count(self._requests, key, window)
            if used >= lim.requests:
                raise RateLimited(f"requests {_per(lim.window_s)}", lim.requests, window.left)
            self._requests[key] = (window.index, used + 1)
        if lim.concurrent is not None:
            self._inflight[key] = self._inflight.get(key, 0) + 1

    async def release(self, key: str) -> None:
        if self.limits.concurrent is None:
            return
        if (left := self._inflight.get(key, 0) - 1) > 0:
            self._inflight[key] = left
        else:
            self._inflight.pop(key, None)

    async def add_tokens(self, key: str, completion_tokens: int) -> None:
        if self.limits.completion_tokens is None or completion_tokens <= 0:
            return
        window = self._window()
        self._tokens[key] = (window.index, self._count(self._tokens, key, window) + completion_tokens)


# KEYS[1] counter; ARGV[1] amount, ARGV[2] ttl ms → the new value.
_INCR_EXPIRE = """
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if n == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n
"""
# KEYS[1] in-flight counter; ARGV[1] limit, ARGV[2] ttl s → 1 admitted, 0 refused.
_ACQUIRE = """
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if n > tonumber(ARGV[1]) then redis.call('DECR', KEYS[1]) return 0 end
return 1
"""
_INFLIGHT_TTL_S = 3600  # a replica that dies mid-request leaks a slot for at most this long


class RedisLimiter:
    """Counters in Redis, shared by every replica using the same server and `prefix`.

    Keys: ``{prefix}:{requests|tokens}:{key}:{window index}`` (expiring a second after the window)
    and ``{prefix}:inflight:{key}``. The caller owns `redis` (a ``redis.asyncio.Redis``) and closes
    it. Redis errors are logged and the request admitted: limits degrade, the service stays up.
    """

    def __init__(self, limits: Limits, redis: Redis, *, prefix: str, clock: Clock = time.time) -> None:
        self.limits = limits
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self._incr = redis.register_script(_INCR_EXPIRE)
        self._acquire = redis.register_script(_ACQUIRE)
        self._ttl_ms = str(math.ceil(limits.window_s * 1000) + 1000)

    def _key(self, kind: str, key: str, window: _Window | None = None) -> str:
        return f"{self.prefix}:{kind}:{key}" + (f":{window.index}" if window else "")

    async def admit(self, key: str) -> None:
        from redis.exceptions import RedisError

        lim = self.limits
        window = _Window(lim.window_s, self.clock)
        acquired = False
        try:
            if lim.concurrent is not None:
                if not await self._acquire(keys=[self._key("inflight", key)], args=[lim.concurrent, _INFLIGHT_TTL_S]):
                    raise RateLimited("concurrent requests", lim.concurrent, 1)
                acquired = True
            if lim.completion_tokens is not None:
                used = int(await self.redis.get(self._key("tokens", key, window)) or 0)
                if used >= lim.completion_tokens:
                    raise RateLimited(f"completion tokens {_per(lim.window_s)}", lim.completion_tokens, window.left)
            if lim.requests is not None:
                # A refused request counts too, harmlessly: the window is already spent.
                count = await self._incr(keys=[self._key("requests", key, window)], args=[1, self._ttl_ms])
                if count > lim.requests:
                    raise RateLimited(f"requests {_per(lim.window_s)}", lim.requests, window.left)
        except RateLimited:
            if acquired:
                await self.release(key)
            raise
        except RedisError as e:
            log.warning("redis limits unavailable, admitting %s: %r", key, e)

    async def release(self, key: str) -> None:
        from redis.exceptions import RedisError

        if self.limits.concurrent is None:
            return
        try:
            await self.redis.decr(self._key("inflight", key))
        except RedisError as e:
            log.warning("redis limits unavailable, in-flight count of %s not released: %r", key, e)

    async def add_tokens(self, key: str, completion_tokens: int) -> None:
        from redis.exceptions import RedisError

        if self.limits.completion_tokens is None or completion_tokens <= 0:
            return
        window = _Window(self.limits.window_s, self.clock)
        try:
            await self._incr(keys=[self._key("tokens", key, window)], args=[completion_tokens, self._ttl_ms])
        except RedisError as e:
            log.warning("redis limits unavailable, %d tokens of %s not counted: %r", completion_tokens, key, e)


class NoLimits:
    """The limiter when no limit is set: every call is free."""

    async def admit(self, key: str) -> None:
        return None

    async def release(self, key: str) -> None:
        return None

    async def add_tokens(self, key: str, completion_tokens: int) -> None:
        return None


def make_limiter(
    limits: Limits, *, redis: Redis | None = None, prefix: str = "june", clock: Clock = time.time
) -> Limiter:
    """NoLimits when `limits` sets nothing, else RedisLimiter over `redis` (shared by replicas; keys
    under `prefix`, e.g. "june:gateway") when given, else MemoryLimiter."""
    if not limits.active:
        return NoLimits()
    if redis is None:
        return MemoryLimiter(limits, clock=clock)
    return RedisLimiter(limits, redis, prefix=prefix, clock=clock)
