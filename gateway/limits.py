"""Per-key limits: requests per window, completion tokens per window, requests in flight.

Windows are fixed (`floor(now / window_s)`): simple, the same on every replica, and a key can at
worst burst 2x the limit across a window edge. Counters live in memory (one replica) or in Redis
(several replicas share them: INCR + PEXPIRE in one Lua script per call, so a counter never
outlives its window). Completion tokens are counted after the fact from the upstream's `usage`, so
a request is refused once the window's tokens are spent, not in the middle of a generation.

Over a limit → `RateLimited` (an OpenAIError 429, type rate_limit_error, with Retry-After).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from core.web import OpenAIError

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What each key may do; None = unlimited."""

    requests: int | None = None
    """Requests started per window."""
    completion_tokens: int | None = None
    """Completion tokens per window (from upstream usage)."""
    concurrent: int | None = None
    """Requests in flight at once."""
    window_s: float = 60.0
    """Window length in seconds."""

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.requests, self.completion_tokens, self.concurrent))


class RateLimited(OpenAIError):
    """429 with Retry-After (whole seconds, at least 1) and OpenAI's rate_limit_error envelope."""

    def __init__(self, what: str, limit: int, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(
            429,
            f"Rate limit reached for {what} (limit {limit}). Please try again in {seconds} s.",
            type="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(seconds)},
        )


class Limiter(Protocol):
    """Counters for one gateway (or several sharing a backend)."""

    async def admit(self, key_id: str) -> None:
        """Count a new request for `key_id`, or raise RateLimited (then nothing is held)."""

    async def release(self, key_id: str) -> None:
        """The request admitted for `key_id` has finished (frees its concurrency slot)."""

    async def add_tokens(self, key_id: str, completion_tokens: int) -> None:
        """Count completion tokens a finished request used."""

    async def aclose(self) -> None:
        """Release the backend's connections."""


class _Window:
    """The current fixed window: its index and the seconds left in it."""

    def __init__(self, window_s: float, clock: Callable[[], float]) -> None:
        now = clock()
        self.index = int(now // window_s)
        self.left = (self.index + 1) * window_s - now


class MemoryLimiter:
    """Counters in this process (one gateway replica). Safe on one event loop: no awaits inside a check."""

    def __init__(self, limits: Limits, *, clock: Callable[[], float] = time.time) -> None:
        self.limits = limits
        self.clock = clock
        self._requests: dict[str, tuple[int, int]] = {}
        self._tokens: dict[str, tuple[int, int]] = {}
        self._inflight: dict[str, int] = {}

    def _count(self, table: dict[str, tuple[int, int]], key_id: str, window: _Window) -> int:
        index, count = table.get(key_id, (window.index, 0))
        return count if index == window.index else 0

    async def admit(self, key_id: str) -> None:
        lim = self.limits
        window = _Window(lim.window_s, self.clock)
        if lim.concurrent is not None and self._inflight.get(key_id, 0) >= lim.concurrent:
            raise RateLimited("concurrent requests", lim.concurrent, 1)
        if lim.completion_tokens is not None and self._count(self._tokens, key_id, window) >= lim.completion_tokens:
            raise RateLimited("completion tokens per minute", lim.completion_tokens, window.left)
        if lim.requests is not None:
            used = self._count(self._requests, key_id, window)
            if used >= lim.requests:
                raise RateLimited("requests per minute", lim.requests, window.left)
            self._requests[key_id] = (window.index, used + 1)
        self._inflight[key_id] = self._inflight.get(key_id, 0) + 1

    async def release(self, key_id: str) -> None:
        self._inflight[key_id] = max(0, self._inflight.get(key_id, 0) - 1)

    async def add_tokens(self, key_id: str, completion_tokens: int) -> None:
        if self.limits.completion_tokens is None or completion_tokens <= 0:
            return
        window = _Window(self.limits.window_s, self.clock)
        self._tokens[key_id] = (window.index, self._count(self._tokens, key_id, window) + completion_tokens)

    async def aclose(self) -> None:
        return None


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
    """Counters in Redis, shared by every gateway replica using the same server and `prefix`.

    Redis errors are logged and the request admitted: limits degrade, the gateway stays up.
    """

    def __init__(self, limits: Limits, redis: Redis, *, prefix: str = "june:gateway", clock: Callable[[], float] = time.time) -> None:
        self.limits = limits
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self._incr = redis.register_script(_INCR_EXPIRE)
        self._acquire = redis.register_script(_ACQUIRE)

    def _key(self, kind: str, key_id: str, window: _Window | None = None) -> str:
        return f"{self.prefix}:{kind}:{key_id}" + (f":{window.index}" if window else "")

    async def admit(self, key_id: str) -> None:
        from redis.exceptions import RedisError

        lim = self.limits
        window = _Window(lim.window_s, self.clock)
        ttl_ms = str(math.ceil(lim.window_s * 1000) + 1000)
        acquired = False
        try:
            if lim.concurrent is not None:
                if not await self._acquire(keys=[self._key("inflight", key_id)], args=[lim.concurrent, _INFLIGHT_TTL_S]):
                    raise RateLimited("concurrent requests", lim.concurrent, 1)
                acquired = True
            if lim.completion_tokens is not None:
                used = int(await self.redis.get(self._key("tokens", key_id, window)) or 0)
                if used >= lim.completion_tokens:
                    raise RateLimited("completion tokens per minute", lim.completion_tokens, window.left)
            if lim.requests is not None:
                count = await self._incr(keys=[self._key("requests", key_id, window)], args=[1, ttl_ms])
                if count > lim.requests:
                    raise RateLimited("requests per minute", lim.requests, window.left)
        except RateLimited:
            if acquired:
                await self.release(key_id)
            raise
        except RedisError as e:
            log.warning("redis limits unavailable, admitting %s: %r", key_id, e)

    async def release(self, key_id: str) -> None:
        from redis.exceptions import RedisError

        if self.limits.concurrent is None:
            return
        try:
            await self.redis.decr(self._key("inflight", key_id))
        except RedisError as e:
            log.warning("redis limits unavailable, in-flight count of %s not released: %r", key_id, e)

    async def add_tokens(self, key_id: str, completion_tokens: int) -> None:
        from redis.exceptions import RedisError

        if self.limits.completion_tokens is None or completion_tokens <= 0:
            return
        window = _Window(self.limits.window_s, self.clock)
        ttl_ms = str(math.ceil(self.limits.window_s * 1000) + 1000)
        try:
            await self._incr(keys=[self._key("tokens", key_id, window)], args=[completion_tokens, ttl_ms])
        except RedisError as e:
            log.warning("redis limits unavailable, %d tokens of %s not counted: %r", completion_tokens, key_id, e)

    async def aclose(self) -> None:
        await self.redis.aclose()


class NoLimits:
    """The limiter when no limit is set: every call is free."""

    async def admit(self, key_id: str) -> None:
        return None

    async def release(self, key_id: str) -> None:
        return None

    async def add_tokens(self, key_id: str, completion_tokens: int) -> None:
        return None

    async def aclose(self) -> None:
        return None


def make_limiter(limits: Limits, backend: str, redis_url: str | None) -> Limiter:
    """The limiter for settings: NoLimits, MemoryLimiter or RedisLimiter (redis.asyncio, imported only here).

    Raises ValueError for the redis backend without a URL.
    """
    if not limits.active:
        return NoLimits()
    if backend == "memory":
        return MemoryLimiter(limits)
    if not redis_url:
        raise ValueError("limits_backend=redis needs JUNE_GATEWAY_REDIS_URL")
    from redis.asyncio import Redis

    return RedisLimiter(limits, Redis.from_url(redis_url))

