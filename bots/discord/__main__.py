"""`python -m bots.discord`: June on Discord (settings from JUNE_BOT_* / JUNE_DISCORD_*).

Connects to Discord's gateway with nextcord (minimal intents: see bots.discord.cog), answers
through the REST API with httpx, and serves ``/health`` and ``/metrics`` on JUNE_DISCORD_PORT.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
from nextcord.ext import commands

from bots.discord.cog import DiscordContext, JuneCog, intents
from bots.discord.rest import DiscordREST
from bots.settings import BotSettings, DiscordSettings, create_conversations, create_pipeline, create_store
from bots.status import create_metrics, create_status_app, start_site
from june import observability

log = logging.getLogger(__name__)


def create_client(ctx: DiscordContext) -> commands.Bot:
    """A nextcord bot with June's cog (no prefix commands: slash commands and messages only)."""
    bot = commands.Bot(intents=intents(ctx.channels))
    bot.add_cog(JuneCog(bot, ctx))
    return bot


async def run(bot_settings: BotSettings, discord: DiscordSettings) -> None:
    """Build everything from settings and run until the connection closes; closes what it opened."""
    telemetry = observability.setup("discord")
    redis = None
    if bot_settings.redis_url:
        import redis.asyncio as aioredis

        redis = aioredis.from_url(bot_settings.redis_url)
    metrics = create_metrics("discord")
    runner = await start_site(create_status_app(metrics), discord.host, discord.port) if discord.port else None
    try:
        async with httpx.AsyncClient(timeout=bot_settings.request_timeout) as gateway_http, httpx.AsyncClient(timeout=30) as discord_http:
            telemetry.instrument(gateway_http)
            conversations = create_conversations(
                bot_settings, create_pipeline(bot_settings, gateway_http), create_store(bot_settings, redis), metrics,
                telemetry.tracer("bots.discord"),
            )
            token = discord.token.get_secret_value()
            ctx = DiscordContext(
                conversations, DiscordREST(discord_http, token, api_base=discord.api_base),
                frozenset(discord.channels), discord.max_voice_seconds, discord.max_file_bytes,
            )
            client = create_client(ctx)
            log.info("connecting to Discord")
            await client.start(token)
    finally:
        if runner is not None:
            await runner.cleanup()
        if redis is not None:
            await redis.aclose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run(BotSettings(), DiscordSettings()))  # type: ignore[call-arg]  # token comes from the env


if __name__ == "__main__":
    main()
