"""core.limits, the one limiter of the gateway and the bots: fixed windows moved by an injected
clock (no test sleeps through a window), in memory and shared by two instances through a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from core.limits import Limits, MemoryLimiter, NoLimits, RateLimited, RedisLimiter, make_limiter
from tests.conftest import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    """Seconds since the epoch, moved by the test; starts at the beginning of a 60 s window."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def refused(limiter: object, key: str) -> RateLimited:
    with pytest.raises(RateLimited) as e:
        await limiter.admit(key)  # type: ignore[attr-defined]
    return e.value


async def test_requests_per_window_per_key_then_the_next_window() -> None:
    clock = Clock()
    limiter = MemoryLimiter(Limits(requests=2, window_s=60), clock=clock)
    await limiter.admit("a")
    await limiter.admit("a")
    clock.now += 15
    e = await refused(limiter, "a")
    assert e.retry_after == 45 and e.limit == 2 and "requests per minute" in str(e)
    await limiter.admit("b")  # per key
    clock.now += 44.5
    assert (await refused(limiter, "a")).retry_after == 1  # at least 1 s, never 0
    clock.now += 0.5
    await limiter.admit("a")  # a new window
    await limiter.admit("a")
    await refused(limiter, "a")


async def test_tokens_are_counted_after_the_fact_and_refuse_the_next_request() -> None:
    clock = Clock()
    limiter = MemoryLimiter(Limits(completion_tokens=5, window_s=10), clock=clock)
    await limiter.admit("k")
    await limiter.add_tokens("k", 7)  # one generation may overshoot: it is not cut off
    clock.now += 4
    e = await refused(limiter, "k")
    assert "completion tokens per 10 s" in str(e) and e.retry_after == 6
    clock.now += 6
    await limiter.admit("k")


async def test_concurrent_requests_are_held_until_released() -> None:
    limiter = MemoryLimiter(Limits(concurrent=1), clock=Clock())
    await limiter.admit("k")
    assert (await refused(limiter, "k")).retry_after == 1
    await limiter.release("k")
    await limiter.admit("k")


async def test_memory_holds_only_the_keys_of_the_current_window() -> None:
    clock = Clock()
    limiter = MemoryLimiter(Limits(requests=1, window_s=10), clock=clock)
    for i in range(1000):
        await limiter.admit(f"idle-{i}")
    await limiter.release("idle-0")  # no concurrency limit: nothing held, nothing kept
    clock.now += 10
    await limiter.admit("active")
    assert list(limiter._requests) == ["active"] and not limiter._inflight


async def test_no_limits_set_means_no_counting() -> None:
    limiter = make_limiter(Limits(window_s=1))
    assert isinstance(limiter, NoLimits)
    for _ in range(100):
        await limiter.admit("k")


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[object]:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_two_replicas_share_one_budget_through_redis(redis: object) -> None:
    """Two limiters ("replicas") over one real redis-server: requests, tokens and in-flight slots
    are one budget; the next window (moved by the clock, not slept through) starts afresh."""
    clock, prefix = Clock(), f"test:{uuid.uuid4().hex}"
    limits = Limits(requests=3, completion_tokens=10, concurrent=1, window_s=60)
    a, b = (make_limiter(limits, redis=redis, prefix=prefix, clock=clock) for _ in range(2))  # type: ignore[arg-type]
    assert isinstance(a, RedisLimiter)

    await a.admit("user")
    await refused(b, "user")  # a's request is still in flight
    await a.release("user")
    await b.admit("user")
    await b.release("user")
    await a.admit("user")
    await a.release("user")
    clock.now += 20
    e = await refused(b, "user")  # 3 requests between them
    assert "requests per minute" in str(e) and e.retry_after == 40
    await b.admit("other")  # per key
    await b.release("other")

    clock.now += 40  # the next window
    await b.admit("user")
    await b.add_tokens("user", 10)
    await b.release("user")
    assert "completion tokens" in str(await refused(a, "user"))


async def test_redis_down_admits_and_the_service_stays_up() -> None:
    from redis.asyncio import Redis

    down = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    limiter = RedisLimiter(Limits(requests=1, completion_tokens=1, concurrent=1), down, prefix="test")
    try:
        for _ in range(3):
            await limiter.admit("k")
            await limiter.add_tokens("k", 5)
            await limiter.release("k")
    finally:
        await down.aclose()
