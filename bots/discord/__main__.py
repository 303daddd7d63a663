"""`python -m bots.discord`: June on Discord (settings from JUNE_BOT_* / JUNE_DISCORD_*).

Connects to Discord's gateway with nextcord (minimal intents: see bots.discord.cog), answers
through the REST API with httpx, and serves ``/health`` and ``/metrics`` on JUNE_DISCORD_PORT.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from nextcord.ext import commands

from bots.compose import open_conversations
from bots.conversation import MediaLimits
from bots.discord.cog import DiscordContext, JuneCog, intents
from bots.discord.rest import DiscordREST
from bots.settings import BotSettings, DiscordSettings
from bots.status import create_status_app, start_site
from core import observability
from core.observability import configure_logging

log = logging.getLogger(__name__)


def create_client(ctx: DiscordContext) -> commands.Bot:
    """A nextcord bot with June's cog (no prefix commands: slash commands and messages only)."""
    bot = commands.Bot(intents=intents(ctx.channels))
    bot.add_cog(JuneCog(bot, ctx))
    return bot


@asynccontextmanager
async def build(bot_settings: BotSettings, discord: DiscordSettings) -> AsyncIterator[DiscordContext]:
    """What the handlers need (the shared core: `open_conversations`, a Discord REST client, both
    traced), closed on exit."""
    telemetry = observability.setup("discord")
    async with (
        open_conversations(bot_settings, "discord", telemetry=telemetry) as conversations,
        httpx.AsyncClient(timeout=30) as http,
    ):
        telemetry.instrument(http)
        rest = DiscordREST(http, discord.token.get_secret_value(), api_base=discord.api_base)
        limits = MediaLimits(discord.max_voice_seconds, discord.max_file_bytes)
        yield DiscordContext(conversations, rest, frozenset(discord.channels), limits)


async def run(bot_settings: BotSettings, discord: DiscordSettings) -> None:
    """Build everything from settings and run until the connection closes; closes what it opened."""
    async with build(bot_settings, discord) as ctx:
        metrics = ctx.conversations.metrics
        runner = await start_site(create_status_app(metrics), discord.host, discord.port) if discord.port else None
        try:
            log.info("connecting to Discord")
            await create_client(ctx).start(discord.token.get_secret_value())
        finally:
            if runner is not None:
                await runner.cleanup()


def main() -> None:
    configure_logging()
    asyncio.run(run(BotSettings(), DiscordSettings()))


if __name__ == "__main__":
    main()
