"""Telegram handlers (aiogram 3): one Router; each handler parses, calls the shared core, replies.

The core (`bots.conversation.Conversations`) and the media limits (`bots.conversation.MediaLimits`)
reach handlers through the dispatcher's workflow data (``Dispatcher(conversations=..., limits=...)``),
so tests build a dispatcher with their own. Every update ends in a message in the chat: the core
turns pipeline trouble into an apology, and anything a handler did not expect (a Telegram error,
a failed upload) is answered by the router's error handler.

Manners: commands match in any case (``/START``); a command addressed to another bot
(``/help@other_bot``) is left to that bot; an unknown command gets the help text; service messages
(members joining, pins, title changes…) are ignored; other content June cannot use (stickers,
photos…) gets a short "voice and text only". A reply whose sending timed out may still arrive, so it
is not apologised for (`bots.telegram.delivery.may_have_arrived`).

Chat keys are ``"telegram:<chat id>"``; per-chat preferences: ``voice`` ("on": text messages are
answered with voice too) and ``captions`` ("off": voice replies come without the transcript/reply
text).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

from aiogram import Bot, Dispatcher, F, Router
from aiogram.enums import ContentType
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import BotCommand, BufferedInputFile, ErrorEvent, Message
from aiogram.utils.chat_action import ChatActionSender

from bots.conversation import FORGOTTEN, UNEXPECTED, Conversations, MediaLimits, Reply
from bots.telegram.delivery import may_have_arrived
from core.text import split_message

log = logging.getLogger(__name__)

GREETING = (
    "Hi, I'm June. Send me a voice message and I'll answer out loud, or just type. /help lists what else I can do."
)
HELP = (
    "Send a voice message, an audio file or a video note and I'll answer with a voice message; "
    "type and I'll type back.\n"
    "/voice on|off: also answer text messages out loud\n"
    "/captions on|off: show what I heard and said under voice replies\n"
    "/reset: forget our conversation\n"
    "/status: how my speech and language model are doing"
)
UNSUPPORTED = "I understand voice and text messages only."
ON_OFF = "Use /{command} on or /{command} off."

COMMANDS = [
    BotCommand(command="start", description="What June does"),
    BotCommand(command="help", description="How to talk to June"),
    BotCommand(command="reset", description="Forget this conversation"),
    BotCommand(command="voice", description="on|off: answer text messages out loud too"),
    BotCommand(command="captions", description="on|off: transcript under voice replies"),
    BotCommand(command="status", description="Health of speech and the language model"),
]

# Telegram's limits: 4096 characters per text message, 1024 per media caption.
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
ACTION_INTERVAL = 4.0  # seconds; a chat action shows for ~5 s, so refresh a little sooner

COMMAND_SYNTAX = r"^/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]+)?(\s|$)"
"""A Telegram command (up to 32 letters, digits, underscores), maybe addressed ``@to_a_bot``: a
text such as "/etc/hosts is broken" is not one, and goes to the model."""

USER_CONTENT = frozenset(
    {
        ContentType.TEXT,
        ContentType.ANIMATION,
        ContentType.AUDIO,
        ContentType.DOCUMENT,
        ContentType.LIVE_PHOTO,
        ContentType.PAID_MEDIA,
        ContentType.PHOTO,
        ContentType.STICKER,
        ContentType.STORY,
        ContentType.VIDEO,
        ContentType.VIDEO_NOTE,
        ContentType.VOICE,
        ContentType.CHECKLIST,
        ContentType.CONTACT,
        ContentType.DICE,
        ContentType.GAME,
        ContentType.POLL,
        ContentType.VENUE,
        ContentType.LOCATION,
        ContentType.GIVEAWAY,
    }
)
"""What a person sends (answered, or told "voice and text only"); every other content type is a
service message (members, pins, titles, video chats, forum topics…) or unknown, and is ignored."""


def create_router() -> Router:
    """A fresh Router with June's handlers (a Router can join only one Dispatcher)."""
    router = Router(name="june")
    router.message.register(ignored, ~F.content_type.in_(USER_CONTENT))
    router.message.register(start, CommandStart(ignore_case=True))
    router.message.register(help_, Command("help", ignore_case=True))
    router.message.register(reset, Command("reset", ignore_case=True))
    router.message.register(toggle, Command("voice", "captions", ignore_case=True))
    router.message.register(status, Command("status", ignore_case=True))
    router.message.register(other_command, F.text.regexp(COMMAND_SYNTAX))
    router.message.register(media_message, F.voice | F.audio | F.video_note)
    router.message.register(text_message, F.text)
    router.message.register(unsupported_message)
    router.errors.register(unexpected_error)
    return router


def create_dispatcher(conversations: Conversations, limits: MediaLimits) -> Dispatcher:
    """A Dispatcher with June's router; handlers receive `conversations` and `limits` as arguments."""
    dispatcher = Dispatcher(conversations=conversations, limits=limits)
    dispatcher.include_router(create_router())
    return dispatcher


def chat_key(message: Message) -> str:
    return f"telegram:{message.chat.id}"


def user_key(message: Message) -> str:
    return str(message.from_user.id if message.from_user else message.chat.id)


async def ignored(message: Message) -> None:
    """A service message (someone joined, a pin, a new title…): nothing to answer."""
    log.debug("ignoring a %s message in chat %s", message.content_type, message.chat.id)


async def other_command(message: Message, bot: Bot) -> None:
    """A command none of June's handlers took: addressed to another bot (ignored), else unknown (help)."""
    assert message.text is not None  # guaranteed by the filter
    word = message.text.split(maxsplit=1)[0]
    _, _, mention = word.partition("@")
    if mention and mention.lower() != ((await bot.me()).username or "").lower():
        return  # ``/help@other_bot``: that bot's business
    await message.answer(HELP)


async def start(message: Message) -> None:
    await message.answer(GREETING)


async def help_(message: Message) -> None:
    await message.answer(HELP)


async def reset(message: Message, conversations: Conversations) -> None:
    await conversations.reset(chat_key(message))
    await message.answer(FORGOTTEN)


async def toggle(message: Message, command: CommandObject, conversations: Conversations) -> None:
    """``/voice on|off`` and ``/captions on|off``: a per-chat preference."""
    value = (command.args or "").strip().lower()
    if value not in ("on", "off"):
        await message.answer(ON_OFF.format(command=command.command))
        return
    await message.answer(await conversations.toggle(chat_key(message), command.command, value))


async def status(message: Message, bot: Bot, conversations: Conversations) -> None:
    async with ChatActionSender.typing(chat_id=message.chat.id, bot=bot, interval=ACTION_INTERVAL):
        health = await conversations.health()
    await message.answer(health.text())


async def media_message(message: Message, bot: Bot, conversations: Conversations, limits: MediaLimits) -> None:
    """Voice note, audio file or video note → transcript → reply → voice note back."""
    media = message.voice or message.audio or message.video_note
    assert media is not None  # registered for F.voice | F.audio | F.video_note
    chat = chat_key(message)
    if refusal := limits.refusal(seconds=media.duration, size=media.file_size):
        await _send(message, conversations.refuse("voice", refusal))  # judged from the update: no download
        return

    async def download() -> bytes:
        # As long as any Bot API call may take (JUNE_TELEGRAM_REQUEST_TIMEOUT), not aiogram's fixed 30 s.
        data = await bot.download(media, timeout=max(1, math.ceil(bot.session.timeout)))
        assert data is not None  # a BytesIO when no destination is given
        return data.read()

    async with ChatActionSender.record_voice(chat_id=message.chat.id, bot=bot, interval=ACTION_INTERVAL):
        reply = await conversations.voice(
            chat, user_key(message), download, filename=_filename(message), notify=message.answer
        )
        await _send(message, reply, captions=(await conversations.prefs(chat)).get("captions") != "off")


def _filename(message: Message) -> str:
    """A file name whose extension names the recording's container (voice notes are OGG/Opus)."""
    if message.video_note:
        return "video-note.mp4"
    if message.audio:
        return message.audio.file_name or "audio.mp3"
    return "voice.ogg"


async def text_message(message: Message, bot: Bot, conversations: Conversations) -> None:
    """Text → text reply (split into Telegram-sized messages), and a voice note when voice is on."""
    assert message.text is not None  # guaranteed by the F.text filter
    async with ChatActionSender.typing(chat_id=message.chat.id, bot=bot, interval=ACTION_INTERVAL):
        reply = await conversations.text(chat_key(message), user_key(message), message.text, notify=message.answer)
        await _send(message, reply, captions=False)


async def unsupported_message(message: Message, conversations: Conversations) -> None:
    await message.answer(conversations.refuse("other", UNSUPPORTED).text)


async def unexpected_error(event: ErrorEvent, conversations: Conversations) -> None:
    """Anything a handler did not expect (a Telegram error, a failed upload): log it, count it, and
    apologise, unless the failed call may still have been carried out (a send that timed out)."""
    conversations.metrics.count("update", "error")
    if may_have_arrived(event.exception):
        log.warning(
            "update %s: a reply may not have reached Telegram (%s); not apologising, it may still arrive",
            event.update.update_id,
            event.exception,
        )
        return
    log.error("unhandled error in update %s", event.update.update_id, exc_info=event.exception)
    message = event.update.message
    if message is not None:
        try:
            await message.answer(UNEXPECTED)
        except Exception:  # the apology itself may be what fails (Telegram down); polling goes on
            log.exception("could not send the apology for update %s", event.update.update_id)


async def _send(message: Message, reply: Reply, *, captions: bool = False) -> None:
    """Send `reply`: a voice note (captioned, or followed by text when the caption is too long) or text."""
    if reply.audio is None:
        await send_text(message, reply.text)
        return
    caption = f"“{reply.transcript}”\n\n{reply.text}" if reply.transcript else reply.text
    fits = len(caption) <= CAPTION_LIMIT
    await message.answer_voice(
        BufferedInputFile(reply.audio, filename="june.ogg"),
        duration=max(1, math.ceil(reply.audio_seconds)),
        caption=caption if captions and fits else None,
    )
    if reply.transcript is None:
        await send_text(message, reply.text)  # a text message answered out loud: the text too
    elif captions and not fits:
        await send_text(message, caption)  # too long for a caption: a follow-up message instead


async def send_text(message: Message, text: str) -> None:
    """`text` in ≤4096-character messages cut at sentence ends; Markdown Telegram can't parse goes plain."""
    for piece in split_message(text, TEXT_LIMIT):
        await _markdown_or_plain(lambda mode: message.answer(piece, parse_mode=mode))  # noqa: B023 - awaited in this iteration


async def _markdown_or_plain(send: Callable[[str | None], Awaitable[object]]) -> None:
    try:
        await send("Markdown")
    except TelegramBadRequest as e:
        if "can't parse entities" not in str(e).lower():
            raise
        await send(None)
