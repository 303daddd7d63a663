"""The bots' composition root: what `BotSettings` builds (the voice pipeline, the token counter, the
chat store, the per-user limit, the shared core `Conversations`) and `open_conversations`, the whole
core both bots run on (telemetry, a traced gateway client, chat store, metrics, limits), opened
and closed as one. Settings live in `bots.settings`; this module only wires them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx
from opentelemetry.trace import Tracer

from bots.conversation import Conversations
from bots.guard import AllowList
from bots.history import ChatStore, MemoryStore, RedisStore
from bots.settings import BotSettings
from bots.status import BotMetrics, create_metrics
from core import observability
from core.limits import Limiter, Limits, make_limiter
from core.tokens import TokenCounter
from core.voice import VoicePipeline

if TYPE_CHECKING:
    from redis.asyncio import Redis


def create_pipeline(settings: BotSettings, http: httpx.AsyncClient) -> VoicePipeline:
    """The shared voice pipeline configured from `settings`, over the caller's `http` client."""
    return VoicePipeline(
        http,
        base_url=settings.base_url,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        chat_model=settings.chat_model,
        transcription_model=settings.transcription_model,
        speech_model=settings.speech_model,
        voice=settings.voice,
        language=settings.language,
        system_prompt=settings.system_prompt,
        max_history_turns=settings.history_turns,
        max_reply_tokens=settings.max_reply_tokens,
        overlap=settings.overlap,
        retry_attempts=settings.retry_attempts,
        temperature=settings.temperature,
    )


def create_counter(settings: BotSettings, http: httpx.AsyncClient) -> TokenCounter:
    """Token counts of the chat model behind `base_url` (its /tokenize, over the caller's `http` client)."""
    key = settings.api_key.get_secret_value() if settings.api_key else None
    return TokenCounter(http, settings.base_url, api_key=key, model=settings.chat_model)


def create_store(settings: BotSettings, redis: Redis | None = None, counter: TokenCounter | None = None) -> ChatStore:
    """RedisStore over `redis` (a ``redis.asyncio.Redis``) when given, else a MemoryStore; history
    tokens counted by `counter` (default: the estimate, no server)."""
    bounds = (settings.history_turns, settings.history_tokens, settings.history_ttl)
    return RedisStore(redis, *bounds, counter=counter) if redis is not None else MemoryStore(*bounds, counter=counter)


def create_limiter(settings: BotSettings, bot: str, redis: Redis | None = None) -> Limiter:
    """The per-user message limit: in Redis (``june:bots:<bot>:…``, shared by the bot's replicas)
    over `redis` (a ``redis.asyncio.Redis``) when given, else in this process."""
    limits = Limits(requests=settings.rate_limit or None, window_s=settings.rate_window)
    return make_limiter(limits, redis=redis, prefix=f"june:bots:{bot}")


def create_conversations(
    settings: BotSettings,
    pipeline: VoicePipeline,
    store: ChatStore,
    metrics: BotMetrics,
    tracer: Tracer | None = None,
    *,
    limiter: Limiter | None = None,
) -> Conversations:
    """The bots' shared core from `settings`; `limiter` default: `create_limiter` in memory."""
    return Conversations(
        pipeline,
        store,
        metrics,
        limiter=limiter or create_limiter(settings, metrics.bot),
        allow=AllowList(settings.allowed_ids),
        deadline=settings.reply_deadline,
        tracer=tracer,
        busy_notice_after=settings.busy_notice_after,
    )


@asynccontextmanager
async def open_conversations(
    settings: BotSettings, bot: str, *, telemetry: observability.Telemetry | None = None
) -> AsyncIterator[Conversations]:
    """The shared core of bot `bot` ("telegram", "discord"), closed on exit.

    Opens a gateway client (timeout `request_timeout`, traced by `telemetry`: default
    ``observability.setup(bot)``) and, with `redis_url`, a Redis connection for the chat store and
    the per-user rate limit (so the bot's replicas share both);
    metrics are fresh ones labelled `bot` (``conversations.metrics``), spans come from the tracer
    ``bots.<bot>``.
    """
    telemetry = telemetry or observability.setup(bot)
    redis = None
    if settings.redis_url:
        import redis.asyncio as aioredis

        redis = aioredis.from_url(settings.redis_url)
    try:
        async with httpx.AsyncClient(timeout=settings.request_timeout) as http:
            telemetry.instrument(http)
            yield create_conversations(
                settings,
                create_pipeline(settings, http),
                create_store(settings, redis, create_counter(settings, http)),
                create_metrics(bot),
                telemetry.tracer(f"bots.{bot}"),
                limiter=create_limiter(settings, bot, redis),
            )
    finally:
        if redis is not None:
            await redis.aclose()
