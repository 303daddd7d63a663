"""`python -m bots.telegram`: June on Telegram (settings from JUNE_BOT_* / JUNE_TELEGRAM_*).

Long polling by default (`bots.telegram.polling.Poller`: an update is confirmed only once answered;
on SIGTERM/SIGINT it stops fetching and gives the updates in flight `shutdown_grace` seconds to
finish; what does not finish is delivered again at the next start); with JUNE_TELEGRAM_WEBHOOK_URL
set, a webhook instead: Telegram POSTs updates to `webhook_path` on the bot's HTTP port, and each
request must carry the secret token (``X-Telegram-Bot-Api-Secret-Token``, checked by aiogram's
SimpleRequestHandler; others get 401). The same port serves ``/health`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bots.compose import open_conversations
from bots.conversation import Conversations, MediaLimits
from bots.settings import BotSettings, TelegramSettings
from bots.status import BotMetrics, create_status_app, start_site
from bots.telegram.delivery import RetryRequests
from bots.telegram.handlers import COMMANDS, create_dispatcher
from bots.telegram.polling import Poller
from core import observability

log = logging.getLogger(__name__)


def create_bot(settings: TelegramSettings) -> Bot:
    """A Bot for `settings.token`, talking to the self-hosted Bot API server when one is set; its
    calls time out after `request_timeout` and are retried per `bots.telegram.delivery.RetryRequests`."""
    session = AiohttpSession(timeout=settings.request_timeout)
    if settings.api_server:
        session.api = TelegramAPIServer.from_base(settings.api_server, is_local=settings.api_server_local)
    session.middleware(RetryRequests(attempts=settings.send_attempts, max_wait=settings.send_max_wait))
    return Bot(settings.token.get_secret_value(), session=session)


@dataclass
class TelegramBot:
    """Everything one running bot is made of (tests reach into it)."""

    bot: Bot
    dispatcher: Dispatcher
    conversations: Conversations
    app: web.Application
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set (or call `stop`) to end polling gracefully, as SIGTERM does."""

    def stop(self) -> None:
        """Stop polling: updates in flight get `shutdown_grace` seconds, then `serve` returns."""
        self.stopping.set()

    @property
    def metrics(self) -> BotMetrics:
        """The core's counters (`conversations.metrics`), served on /metrics by `app`."""
        return self.conversations.metrics


@asynccontextmanager
async def build(
    bot_settings: BotSettings, telegram: TelegramSettings, *, telemetry: observability.Telemetry | None = None
) -> AsyncIterator[TelegramBot]:
    """The bot and what it owns (the shared core: `open_conversations`), closed on exit."""
    async with open_conversations(bot_settings, "telegram", telemetry=telemetry) as conversations:
        limits = MediaLimits(telegram.max_voice_seconds, telegram.max_file_bytes)
        yield TelegramBot(
            create_bot(telegram),
            create_dispatcher(conversations, limits),
            conversations,
            create_status_app(conversations.metrics),
        )


async def serve(june: TelegramBot, telegram: TelegramSettings, *, handle_signals: bool = True) -> None:
    """Register the commands, start the HTTP port, then poll (or take webhooks) until stopped.

    Polling stops on `june.stop()` or a signal (`handle_signals`), after the updates in flight
    finish or `shutdown_grace` passes; webhook mode runs until cancelled. Closes the bot's session
    and the HTTP port.
    """
    bot, dispatcher = june.bot, june.dispatcher
    webhook = telegram.webhook_url is not None
    runner: web.AppRunner | None = None
    handler: SimpleRequestHandler | None = None
    try:
        await bot.set_my_commands(COMMANDS)
        if webhook:
            secret = telegram.webhook_secret.get_secret_value() if telegram.webhook_secret else None
            handler = SimpleRequestHandler(dispatcher, bot, secret_token=secret)
            handler.register(june.app, path=telegram.webhook_path)
            setup_application(june.app, dispatcher, bot=bot)
        else:
            # Polling and a webhook exclude each other: drop any webhook left from another deployment.
            await bot.delete_webhook(drop_pending_updates=telegram.drop_pending_updates)
        if webhook or telegram.port:
            runner = await start_site(june.app, telegram.host, telegram.port)
        if telegram.webhook_url is not None:
            await bot.set_webhook(
                telegram.webhook_url,
                secret_token=secret,
                drop_pending_updates=telegram.drop_pending_updates,
                allowed_updates=dispatcher.resolve_used_update_types(),
            )
            log.info("taking webhooks at %s", telegram.webhook_url)
            await asyncio.Event().wait()  # until cancelled; the app's shutdown closes the session
        else:
            log.info("polling Telegram%s", f" via {telegram.api_server}" if telegram.api_server else "")
            poller = Poller(
                dispatcher, bot, timeout=telegram.polling_timeout, grace=telegram.shutdown_grace, stopping=june.stopping
            )
            await poller.run(handle_signals=handle_signals)
    finally:
        if handler is not None:
            # Updates are answered in the background (Telegram gets its 200 at once): let the ones
            # in flight finish before the session closes, so none is dropped at shutdown.
            pending: set[asyncio.Task[object]] = getattr(handler, "_background_feed_update_tasks", set())
            if pending:
                await asyncio.wait(pending, timeout=telegram.shutdown_grace)
        if runner is not None:
            await runner.cleanup()
        await bot.session.close()


async def run(bot_settings: BotSettings, telegram: TelegramSettings) -> None:
    """Build everything from settings and serve until a signal; closes what it opened."""
    async with build(bot_settings, telegram) as june:
        await serve(june, telegram)


def main() -> None:
    observability.configure_logging()
    asyncio.run(run(BotSettings(), TelegramSettings()))


if __name__ == "__main__":
    main()
