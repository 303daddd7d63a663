"""Chat memory: bounds by turns, tokens and idle time; the same behaviour in memory and in a real Redis."""

from __future__ import annotations

import pytest

from bots.history import MemoryStore, RedisStore, bound
from core.tokens import TokenCounter

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def redis_client(redis_url: str):
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def make_store(request, redis_url: str):
    """A factory of stores with given bounds; for Redis, stores built by one factory share data (replicas)."""
    if request.param == "memory":
        yield lambda **bounds: MemoryStore(**bounds)
        return
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    await client.flushdb()
    yield lambda **bounds: RedisStore(client, **bounds)
    await client.aclose()


def contents(messages: list[dict[str, str]]) -> list[str]:
    return [m["content"] for m in messages]


async def test_history_is_bounded_by_turns_per_chat(make_store):
    store = make_store(max_turns=4, max_tokens=None, ttl=None)
    for i in range(4):
        await store.add("chat", f"q{i}", f"a{i}")
    await store.add("other", "x", "y")
    assert contents(await store.messages("chat")) == ["q0", "a0", "q1", "a1", "q2", "a2", "q3", "a3"]
    await store.add("chat", "q4", "a4")  # past the bound: down to half of it, the newest turns
    assert contents(await store.messages("chat")) == ["q3", "a3", "q4", "a4"]
    await store.add("chat", "q5", "a5")  # the beginning stays while within the bound (prefix cache)
    assert contents(await store.messages("chat")) == ["q3", "a3", "q4", "a4", "q5", "a5"]
    assert [m["role"] for m in await store.messages("chat")] == ["user", "assistant"] * 3
    assert contents(await store.messages("other")) == ["x", "y"]

    await store.clear("chat")
    assert await store.messages("chat") == [] and len(await store.messages("other")) == 2
    assert await make_store(max_turns=0, max_tokens=None, ttl=None).messages("nobody") == []


async def test_history_is_bounded_by_approximate_tokens(make_store):
    store = make_store(max_turns=10, max_tokens=30, ttl=None)
    long = "x" * 40  # 10 tokens
    for i in range(3):
        await store.add("chat", f"{long}{i}", "ok")  # 11 + 1 tokens per turn
    kept = await store.messages("chat")
    assert contents(kept) == [f"{long}2", "ok"]  # 36 > 30: down to 15 or less
    assert await store.counter.total(m["content"] for m in kept) <= 15


async def test_preferences_are_per_chat_and_survive_reset(make_store):
    store = make_store(max_turns=4, max_tokens=None, ttl=None)
    assert await store.prefs("chat") == {}
    await store.set_pref("chat", "voice", "on")
    await store.add("chat", "q", "a")
    await store.clear("chat")
    assert await store.prefs("chat") == {"voice": "on"} and await store.prefs("other") == {}


async def test_memory_history_expires_after_idle_ttl():
    clock = Clock()
    store = MemoryStore(max_turns=4, max_tokens=None, ttl=60, clock=clock)
    await store.add("chat", "q", "a")
    clock.now += 59
    assert len(await store.messages("chat")) == 2
    await store.add("chat", "q2", "a2")  # activity renews the ttl
    clock.now += 59
    assert len(await store.messages("chat")) == 4
    clock.now += 61
    assert await store.messages("chat") == []


async def test_redis_history_is_shared_by_replicas_and_expires(redis_client):
    one, two = RedisStore(redis_client, 4, None, ttl=30), RedisStore(redis_client, 4, None, ttl=30)
    await one.add("telegram:1", "q", "a")
    assert contents(await two.messages("telegram:1")) == ["q", "a"]
    ttl = await redis_client.ttl("june:chat:telegram:1")
    assert 0 < ttl <= 30


async def test_bound_keeps_the_newest_turns():
    turns, estimate = [("a" * 8, "b" * 8), ("c", "d"), ("e", "f")], TokenCounter()  # no server: the estimate
    assert await bound(turns, 3, 8, estimate) == turns  # 2 + 2 + 1 + 1 + 1 + 1 tokens: within both bounds
    assert await bound(turns, 2, None, estimate) == turns[2:]  # past 2 turns: down to 1
    assert await bound(turns, 3, 7, estimate) == turns[2:]  # past 7 tokens: down to 3 or less (the last two are 4)
    assert await bound(turns, 3, 3, estimate) == turns[2:]  # the newest alone (2) is within 3: it stays
    assert await bound(turns, 3, 1, estimate) == []  # not even the newest fits
    assert await bound(turns, 0, None, estimate) == []
