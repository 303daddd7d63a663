"""Telegram handlers (aiogram 3): one Router; each handler parses, calls the pipeline, replies.

The pipeline and history reach handlers through the dispatcher's workflow data
(``Dispatcher(pipeline=..., history=...)``), so tests build a dispatcher with their own.
Every failure ends in a friendly message in the chat: PipelineError carries its own
`user_message`; anything unexpected is logged and answered by the router's error handler.
"""

from __future__ import annotations

import logging

from aiogram import Bot, Dispatcher, F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import BotCommand, BufferedInputFile, ErrorEvent, Message
from aiogram.utils.chat_action import ChatActionSender

from bots.history import ChatHistory
from bots.pipeline import PipelineError, VoicePipeline

log = logging.getLogger(__name__)

GREETING = (
    "Hi, I'm June. Send me a voice message and I'll answer out loud, or just type. "
    "/reset makes me forget our conversation."
)
UNSUPPORTED = "I understand voice and text messages only."
UNEXPECTED = "Sorry, something went wrong on my side. Please try again."

COMMANDS = [
    BotCommand(command="start", description="What June does"),
    BotCommand(command="reset", description="Forget this conversation"),
]

# Telegram's limits: 4096 characters per text message, 1024 per media caption.
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024


def create_router() -> Router:
    """A fresh Router with June's handlers (a Router can join only one Dispatcher)."""
    router = Router(name="june")
    router.message.register(start, CommandStart())
    router.message.register(reset, Command("reset"))
    router.message.register(voice_message, F.voice)
    router.message.register(text_message, F.text)
    router.message.register(unsupported_message)
    router.errors.register(unexpected_error)
    return router


def create_dispatcher(pipeline: VoicePipeline, history: ChatHistory) -> Dispatcher:
    """A Dispatcher with June's router; handlers receive `pipeline` and `history` as arguments."""
    dispatcher = Dispatcher(pipeline=pipeline, history=history)
    dispatcher.include_router(create_router())
    return dispatcher


async def start(message: Message) -> None:
    await message.answer(GREETING)


async def reset(message: Message, history: ChatHistory) -> None:
    history.clear(message.chat.id)
    await message.answer("Done, I've forgotten our conversation.")


async def voice_message(message: Message, bot: Bot, pipeline: VoicePipeline, history: ChatHistory) -> None:
    """Voice note → transcript → reply → voice note back (captioned with what was heard and said)."""
    assert message.voice is not None  # guaranteed by the F.voice filter
    chat_id = message.chat.id
    try:
        async with ChatActionSender.record_voice(chat_id=chat_id, bot=bot):
            downloaded = await bot.download(message.voice)
            assert downloaded is not None  # a BytesIO when no destination is given
            result = await pipeline.run_voice(downloaded.read(), history.messages(chat_id))
    except PipelineError as e:
        log.warning("voice message in chat %s failed: %s", chat_id, e)
        await message.answer(e.user_message)
        return
    history.add(chat_id, result.transcript, result.reply)
    assert result.audio is not None  # run_voice always speaks
    caption = f"“{result.transcript}”\n\n{result.reply}"
    await message.answer_voice(
        BufferedInputFile(result.audio, filename="june.ogg"), caption=_clip(caption, CAPTION_LIMIT)
    )


async def text_message(message: Message, bot: Bot, pipeline: VoicePipeline, history: ChatHistory) -> None:
    """Text → text reply (split into Telegram-sized messages)."""
    assert message.text is not None  # guaranteed by the F.text filter
    chat_id = message.chat.id
    try:
        async with ChatActionSender.typing(chat_id=chat_id, bot=bot):
            result = await pipeline.run_text(message.text, history.messages(chat_id))
    except PipelineError as e:
        log.warning("text message in chat %s failed: %s", chat_id, e)
        await message.answer(e.user_message)
        return
    history.add(chat_id, result.transcript, result.reply)
    for start_ in range(0, len(result.reply), TEXT_LIMIT):
        await message.answer(result.reply[start_ : start_ + TEXT_LIMIT])


async def unsupported_message(message: Message) -> None:
    await message.answer(UNSUPPORTED)


async def unexpected_error(event: ErrorEvent) -> None:
    """Anything a handler did not expect (a failed download, a Telegram error): log it, apologise."""
    log.exception("unhandled error in update %s", event.update.update_id, exc_info=event.exception)
    message = event.update.message
    if message is not None:
        try:
            await message.answer(UNEXPECTED)
        except Exception:  # the apology itself may be what fails (Telegram down); polling goes on
            log.exception("could not send the apology for update %s", event.update.update_id)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
