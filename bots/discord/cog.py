"""Discord handlers (nextcord): a message listener and slash commands over the shared core.

`handle_message` is the whole message flow, a plain function of a `nextcord.Message` so tests
drive it with nextcord objects built from API payloads; `JuneCog` only wires it and the slash
commands (/help, /reset, /voice, /captions, /status) to the client. Replies go out through
`DiscordREST` (httpx), not nextcord, because nextcord cannot send voice messages.

June answers a message when it is a DM, mentions the bot, or is in one of the enabled channels.
A voice message (message flag IS_VOICE_MESSAGE, 1 << 13) or any ``audio/*`` attachment → a
Discord voice message back (plus the transcript and reply as text unless ``/captions off``);
text → text (and voice with ``/voice on``). Chat keys are ``"discord:<channel id>"``.

A message in an enabled channel that mentions another bot (not June) is left to it; a slash command
typed as text (``/frobnicate``) gets the help. Only what a person wrote is answered: system messages
(members joining, pins, boosts, threads…) are ignored. A reply whose post may have gone through
after all (a timeout) is not apologised for.
A download that fails is told as such (the core's DOWNLOAD_FAILED), one that is too big as TOO_BIG.

Intents: guilds, guild_messages and dm_messages always; message_content only when `channels`
enables channels where June answers without being mentioned (Discord delivers content of DMs and
of messages that mention the bot without that privileged intent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import nextcord
from nextcord.ext import commands

from bots.conversation import FORGOTTEN, UNEXPECTED, Conversations, MediaLimits, Refused, Reply
from bots.discord.rest import IS_VOICE_MESSAGE, AttachmentTooLarge, DiscordError, DiscordREST, waveform
from core.audio import AudioDecodeError, decode
from core.voice import SAMPLE_RATE

log = logging.getLogger(__name__)

HELP = (
    "Send me a voice message (or an audio file) and I'll answer with a voice message; mention me "
    "or DM me with text and I'll write back.\n"
    "/voice on|off: also answer text out loud · /captions on|off: text with voice replies · "
    "/reset: forget our conversation · /status: health of speech and the language model"
)
TYPING_INTERVAL = 8.0  # seconds; Discord shows typing for ~10 s per call
TYPED_COMMAND = re.compile(r"^/[\w-]{1,32}(\s|$)")
"""A slash command typed as plain text (Discord sends it so when no registered command matched)."""
WRITTEN = (nextcord.MessageType.default, nextcord.MessageType.reply)
"""Message types a person writes; every other type is a system message."""


@dataclass(frozen=True)
class DiscordContext:
    """What `handle_message` needs besides the message: the core, the REST client, where to answer, limits."""

    conversations: Conversations
    rest: DiscordREST
    channels: frozenset[int] = frozenset()
    limits: MediaLimits = field(default_factory=MediaLimits)


def chat_key(channel_id: int) -> str:
    """The conversation key of a Discord channel: "discord:<channel id>"."""
    return f"discord:{channel_id}"


def command_chat(interaction: nextcord.Interaction) -> str:
    """The conversation key of the channel a slash command was given in."""
    assert interaction.channel_id is not None  # Discord sends it with every application command
    return chat_key(interaction.channel_id)


def intents(channels: frozenset[int] | set[int] | list[int]) -> nextcord.Intents:
    """Minimal gateway intents (see the module docstring)."""
    wanted = nextcord.Intents.none()
    wanted.guilds = wanted.guild_messages = wanted.dm_messages = True
    wanted.message_content = bool(channels)
    return wanted


def audio_attachment(message: nextcord.Message) -> nextcord.Attachment | None:
    """The message's voice recording or audio file, if any."""
    for attachment in message.attachments:
        content_type = (attachment.content_type or "").split(";")[0]
        if content_type.startswith("audio/") or (
            message.flags.value & IS_VOICE_MESSAGE and attachment.filename.endswith(".ogg")
        ):
            return attachment
    return None


def addressed(message: nextcord.Message, me: int, channels: frozenset[int]) -> bool:
    """A DM, a mention of June, or a message in an enabled channel that is not for another bot
    (one that mentions a bot, not June, is left to that bot)."""
    if message.guild is None or any(u.id == me for u in message.mentions):
        return True
    return message.channel.id in channels and not any(u.bot for u in message.mentions)


async def handle_message(message: nextcord.Message, me: int, ctx: DiscordContext) -> None:
    """Answer `message` if it is for June (`me`: the bot's user id); never raises for a message."""
    if message.author.bot or message.type not in WRITTEN or not addressed(message, me, ctx.channels):
        return
    try:
        async with _typing(ctx.rest, message.channel.id):
            await _answer(message, me, ctx)
    except DiscordError as e:
        if e.may_have_arrived:
            log.warning("reply to Discord message %s may not have been posted (%s); it may still show", message.id, e)
            return
        log.exception("could not answer Discord message %s", message.id)
        with contextlib.suppress(Exception):
            await ctx.rest.send_text(message.channel.id, UNEXPECTED, reply_to=message.id)
    except Exception:  # a Discord error while replying: log it, try a plain apology
        log.exception("could not answer Discord message %s", message.id)
        with contextlib.suppress(Exception):
            await ctx.rest.send_text(message.channel.id, UNEXPECTED, reply_to=message.id)


async def _answer(message: nextcord.Message, me: int, ctx: DiscordContext) -> None:
    chat, user = chat_key(message.channel.id), str(message.author.id)

    async def notify(text: str) -> None:
        await ctx.rest.send_text(message.channel.id, text, reply_to=message.id)

    attachment = audio_attachment(message)
    if attachment is not None:
        if refusal := ctx.limits.refusal(size=attachment.size):
            reply = ctx.conversations.refuse("voice", refusal)
        else:
            reply = await ctx.conversations.voice(
                chat, user, lambda: _download(ctx, attachment), filename=attachment.filename, notify=notify
            )
        captions = (await ctx.conversations.prefs(chat)).get("captions") != "off"
        await send_reply(ctx.rest, message, reply, captions=captions)
        return
    text = re.sub(rf"<@!?{me}>", "", message.content).strip()
    if not text or TYPED_COMMAND.match(text):  # a bare mention, or "/help" typed as text: how to use June
        await ctx.rest.send_text(message.channel.id, HELP, reply_to=message.id)
        return
    reply = await ctx.conversations.text(chat, user, text, notify=notify)
    await send_reply(ctx.rest, message, reply, captions=True)


async def _download(ctx: DiscordContext, attachment: nextcord.Attachment) -> bytes:
    """The attachment's bytes; raises Refused when the recording is longer than the limit (nextcord
    does not pass on Discord's ``duration_secs``, so the length is measured here)."""
    try:
        data = await ctx.rest.download(attachment.url, max_bytes=ctx.limits.max_bytes)
    except AttachmentTooLarge as e:  # larger than its announced size
        raise Refused(ctx.limits.refusal(size=ctx.limits.max_bytes + 1) or str(e)) from e
    ctx.limits.check(seconds=await asyncio.to_thread(_seconds, data))
    return data


def _seconds(data: bytes) -> float:
    try:
        return len(decode(data, 8000)) / 8000
    except AudioDecodeError:
        return 0.0  # let the speech service judge it


async def send_reply(rest: DiscordREST, message: nextcord.Message, reply: Reply, *, captions: bool) -> None:
    """A voice message when `reply` has audio (then, with `captions`, the text), else text."""
    channel = message.channel.id
    if reply.audio is None or reply.samples is None:
        await rest.send_text(channel, reply.text, reply_to=message.id)
        return
    as_voice = await rest.send_voice(
        channel,
        reply.audio,
        duration_secs=reply.audio_seconds,
        waveform_b64=waveform(reply.samples, SAMPLE_RATE),
        text=reply.text,
        reply_to=message.id,
    )
    if as_voice and captions:
        heard = f"“{reply.transcript}”\n\n" if reply.transcript else ""
        await rest.send_text(channel, heard + reply.text)


@contextlib.asynccontextmanager
async def _typing(rest: DiscordREST, channel: int) -> AsyncIterator[None]:
    """Keep "June is typing…" up until the block ends (failures to show it are ignored)."""

    async def refresh() -> None:
        while True:
            with contextlib.suppress(Exception):
                await rest.typing(channel)
            await asyncio.sleep(TYPING_INTERVAL)

    task = asyncio.create_task(refresh())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class JuneCog(commands.Cog):
    """Wires `handle_message` and the slash commands to a nextcord bot."""

    def __init__(self, bot: commands.Bot, ctx: DiscordContext) -> None:
        self.bot, self.ctx = bot, ctx

    @commands.Cog.listener()
    async def on_message(self, message: nextcord.Message) -> None:
        assert self.bot.user is not None  # set once connected, before any message arrives
        await handle_message(message, self.bot.user.id, self.ctx)

    @nextcord.slash_command(name="help", description="How to talk to June")
    async def help_(self, interaction: nextcord.Interaction) -> None:
        await interaction.response.send_message(HELP)

    @nextcord.slash_command(name="reset", description="Forget this conversation")
    async def reset(self, interaction: nextcord.Interaction) -> None:
        await self.ctx.conversations.reset(command_chat(interaction))
        await interaction.response.send_message(FORGOTTEN)

    @nextcord.slash_command(name="voice", description="Answer text messages out loud too")
    async def voice(
        self, interaction: nextcord.Interaction, value: str = nextcord.SlashOption(name="value", choices=["on", "off"])
    ) -> None:
        chat = command_chat(interaction)
        await interaction.response.send_message(await self.ctx.conversations.toggle(chat, "voice", value))

    @nextcord.slash_command(name="captions", description="Send the transcript and reply as text with voice replies")
    async def captions(
        self, interaction: nextcord.Interaction, value: str = nextcord.SlashOption(name="value", choices=["on", "off"])
    ) -> None:
        chat = command_chat(interaction)
        await interaction.response.send_message(await self.ctx.conversations.toggle(chat, "captions", value))

    @nextcord.slash_command(name="status", description="Health of speech and the language model")
    async def status(self, interaction: nextcord.Interaction) -> None:
        await interaction.response.defer()  # probing can take longer than Discord's 3 s
        health = await self.ctx.conversations.health()
        await interaction.followup.send(health.text())
