"""`python -m bots.telegram`: June on Telegram, long polling (settings from JUNE_BOT_* / JUNE_TELEGRAM_*)."""

from __future__ import annotations

import asyncio
import logging

import httpx
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bots.history import ChatHistory
from bots.settings import BotSettings, TelegramSettings, create_pipeline
from bots.telegram.handlers import COMMANDS, create_dispatcher

log = logging.getLogger(__name__)


def create_bot(settings: TelegramSettings) -> Bot:
    """A Bot for `settings.token`, talking to the self-hosted Bot API server when one is set."""
    session = None
    if settings.api_server:
        api = TelegramAPIServer.from_base(settings.api_server, is_local=settings.api_server_local)
        session = AiohttpSession(api=api)
    return Bot(settings.token.get_secret_value(), session=session)


async def serve(bot: Bot, dispatcher: Dispatcher, telegram: TelegramSettings, *, handle_signals: bool = True) -> None:
    """Register the commands and long-poll until `dispatcher.stop_polling()` or a signal; closes `bot`'s session."""
    try:
        # Polling and a webhook exclude each other: drop any webhook left from another deployment.
        await bot.delete_webhook(drop_pending_updates=telegram.drop_pending_updates)
        await bot.set_my_commands(COMMANDS)
    except BaseException:
        await bot.session.close()  # start_polling closes it otherwise
        raise
    log.info("polling Telegram%s", f" via {telegram.api_server}" if telegram.api_server else "")
    await dispatcher.start_polling(bot, polling_timeout=telegram.polling_timeout, handle_signals=handle_signals)


async def run(bot_settings: BotSettings, telegram: TelegramSettings) -> None:
    """Build everything from settings and serve until a signal; closes what it opened."""
    bot = create_bot(telegram)
    async with httpx.AsyncClient(timeout=bot_settings.request_timeout) as http:
        pipeline = create_pipeline(bot_settings, http)
        await serve(bot, create_dispatcher(pipeline, ChatHistory(bot_settings.history_turns)), telegram)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run(BotSettings(), TelegramSettings()))  # type: ignore[call-arg]  # token comes from the env


if __name__ == "__main__":
    main()
