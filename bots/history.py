"""Per-chat memory for the bots: conversation history and chat preferences, in memory or in Redis.

History is bounded three ways: at most `max_turns` user/assistant pairs, at most `max_tokens`
tokens as the served model counts them (``core.tokens.TokenCounter``: vLLM's /tokenize through the
gateway, cached; without it an estimate that never undercounts CJK), and forgotten after `ttl`
seconds without a new turn. The oldest turns go first, down to half of each bound once one is
passed (``core.history``: the next requests share their beginning, which vLLM's prefix cache
reuses). Only the visible reply is stored, never the model's reasoning (the pipeline strips it
before anything reaches here).

`MemoryStore` lives in one process (lost on restart); `RedisStore` keeps the same data in Redis so
several bot replicas share it (``june:chat:<chat>`` a list of JSON turns, ``june:prefs:<chat>`` a
hash; both expire after `ttl`). Chat keys are strings (``"telegram:123"``, ``"discord:456"``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from core.history import oldest_to_drop
from core.tokens import TokenCounter
from core.voice_client import Message

if TYPE_CHECKING:
    from redis.asyncio import Redis

Turn = tuple[str, str]
"""One exchange: (user text, assistant reply)."""


class ChatStore(Protocol):
    """Where the bots keep each chat's history and preferences (see module docstring)."""

    async def messages(self, chat: str) -> list[Message]:
        """The chat's remembered messages, oldest first (``[user, assistant, user, ...]``)."""
        ...

    async def add(self, chat: str, user: str, assistant: str) -> None:
        """Remember one exchange, then apply the bounds."""
        ...

    async def clear(self, chat: str) -> None:
        """Forget the chat's conversation (preferences stay)."""
        ...

    async def prefs(self, chat: str) -> dict[str, str]:
        """The chat's preferences (e.g. ``{"voice": "on"}``); empty when none were set."""
        ...

    async def set_pref(self, chat: str, key: str, value: str) -> None:
        """Set one preference of the chat."""
        ...


async def bound(turns: list[Turn], max_turns: int, max_tokens: int | None, counter: TokenCounter) -> list[Turn]:
    """The newest suffix of `turns` within `max_turns` pairs and `max_tokens` tokens (`counter`'s
    count); once a bound is passed, cut to half of each (`core.history.oldest_to_drop`)."""
    if max_tokens is None:
        sizes = [0] * len(turns)
    else:
        sizes = list(await asyncio.gather(*(counter.total(turn) for turn in turns)))  # cached: only new texts are asked
    return turns[oldest_to_drop(sizes, max_turns, max_tokens) :]


def to_messages(turns: list[Turn]) -> list[Message]:
    return [m for u, a in turns for m in ({"role": "user", "content": u}, {"role": "assistant", "content": a})]


@dataclass
class _Chat:
    turns: list[Turn] = field(default_factory=list)
    prefs: dict[str, str] = field(default_factory=dict)
    touched: float = 0.0


class MemoryStore:
    """ChatStore in this process. `counter` counts tokens (default: the estimate, no server);
    `clock` (seconds, monotonic) is injectable for tests."""

    def __init__(
        self,
        max_turns: int = 8,
        max_tokens: int | None = 2000,
        ttl: float | None = 3600.0,
        *,
        counter: TokenCounter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_turns < 0:
            raise ValueError(f"max_turns must be >= 0, got {max_turns}")
        self.max_turns, self.max_tokens, self.ttl = max_turns, max_tokens, ttl
        self.counter = counter or TokenCounter()
        self._clock = clock
        self._chats: dict[str, _Chat] = {}

    def _get(self, chat: str) -> _Chat:
        now = self._clock()
        self._expire(now)  # a chat idle too long is forgotten, this one included
        entry = self._chats.get(chat)
        if entry is None:
            entry = self._chats[chat] = _Chat(touched=now)
        return entry

    def _expire(self, now: float) -> None:
        if self.ttl is not None:
            for key in [k for k, c in self._chats.items() if now - c.touched > self.ttl]:
                del self._chats[key]

    async def messages(self, chat: str) -> list[Message]:
        return to_messages(self._get(chat).turns)

    async def add(self, chat: str, user: str, assistant: str) -> None:
        entry = self._get(chat)
        entry.turns = await bound([*entry.turns, (user, assistant)], self.max_turns, self.max_tokens, self.counter)
        entry.touched = self._clock()

    async def clear(self, chat: str) -> None:
        self._get(chat).turns = []

    async def prefs(self, chat: str) -> dict[str, str]:
        return dict(self._get(chat).prefs)

    async def set_pref(self, chat: str, key: str, value: str) -> None:
        entry = self._get(chat)
        entry.prefs[key] = value
        entry.touched = self._clock()


class RedisStore:
    """ChatStore in Redis (`redis`: a ``redis.asyncio.Redis`` the caller owns), shared by replicas.

    Expiry is Redis' own (EXPIRE `ttl` seconds, renewed on every write); bounds are applied on write
    by rewriting the chat's list in one MULTI transaction. `counter` as in `MemoryStore`.
    """

    def __init__(
        self, redis: Redis, max_turns: int = 8, max_tokens: int | None = 2000, ttl: float | None = 3600.0, *,
        prefix: str = "june", counter: TokenCounter | None = None,
    ) -> None:  # fmt: skip
        self._redis = redis
        self.max_turns, self.max_tokens, self.ttl = max_turns, max_tokens, ttl
        self.counter = counter or TokenCounter()
        self._prefix = prefix

    def _keys(self, chat: str) -> tuple[str, str]:
        return f"{self._prefix}:chat:{chat}", f"{self._prefix}:prefs:{chat}"

    async def _turns(self, chat: str) -> list[Turn]:
        raw = await self._redis.lrange(self._keys(chat)[0], 0, -1)
        return [tuple(json.loads(item)) for item in raw]

    async def messages(self, chat: str) -> list[Message]:
        return to_messages(await bound(await self._turns(chat), self.max_turns, self.max_tokens, self.counter))

    async def add(self, chat: str, user: str, assistant: str) -> None:
        key, prefs = self._keys(chat)
        turns = await bound(
            [*await self._turns(chat), (user, assistant)], self.max_turns, self.max_tokens, self.counter
        )
        async with self._redis.pipeline(transaction=True) as tx:
            tx.delete(key)
            if turns:
                tx.rpush(key, *(json.dumps(t) for t in turns))
            if self.ttl is not None:
                tx.expire(key, int(self.ttl))
                tx.expire(prefs, int(self.ttl))
            await tx.execute()

    async def clear(self, chat: str) -> None:
        await self._redis.delete(self._keys(chat)[0])

    async def prefs(self, chat: str) -> dict[str, str]:
        raw = await self._redis.hgetall(self._keys(chat)[1])
        return {_str(k): _str(v) for k, v in raw.items()}

    async def set_pref(self, chat: str, key: str, value: str) -> None:
        name = self._keys(chat)[1]
        await self._redis.hset(name, key, value)
        if self.ttl is not None:
            await self._redis.expire(name, int(self.ttl))


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
