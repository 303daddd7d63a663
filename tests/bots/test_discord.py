"""The Discord handler driven with real nextcord objects built from API payloads; Discord's REST API
and the gateway answered by respx at the HTTP edge, the voice-message upload checked on the wire."""

from __future__ import annotations

import base64
import dataclasses
import email
import json
import mimetypes

import httpx
import nextcord
import numpy as np
import pytest
import respx

from bots.apologies import apology
from bots.conversation import BUSY_NOTICE, DOWNLOAD_FAILED, TOO_BIG, TOO_LONG, UNEXPECTED, Conversations, MediaLimits
from bots.discord.__main__ import build
from bots.discord.cog import HELP, DiscordContext, handle_message, intents
from bots.discord.rest import DiscordREST, waveform
from bots.history import MemoryStore
from bots.settings import BotSettings, DiscordSettings
from bots.status import create_metrics
from core.audio import encode
from core.voice import VoicePipeline
from core.voice_errors import VoiceError
from tests.bots.conftest import GATEWAY, TONE_SECONDS, is_ogg_opus

pytestmark = pytest.mark.anyio

API = "https://discord.com/api/v10"
ME, USER, DM, TEXT_CHANNEL, GUILD = 1000, 42, 555, 666, 77
CDN = "https://cdn.discordapp.com/attachments/555/1/voice-message.ogg"
USER_PAYLOAD = {"id": str(USER), "username": "tester", "discriminator": "0", "avatar": None}


def tone(seconds: float) -> bytes:
    """`seconds` of a 300 Hz tone as OGG/Opus: what a user's recording stands in for."""
    n = int(16000 * seconds)
    return encode(0.2 * np.sin(np.linspace(0, 2 * np.pi * 300 * seconds, n)), 16000, "opus")


VOICE = tone(1.0)  # the user's voice message


@pytest.fixture
def routes(gateway: respx.MockRouter) -> respx.MockRouter:
    """The shared gateway routes (conftest) plus Discord's CDN and REST API."""
    gateway.get(CDN, name="cdn").respond(content=VOICE, headers={"content-type": "audio/ogg"})
    gateway.post(url__regex=rf"{API}/channels/\d+/typing", name="typing").respond(204)
    gateway.post(url__regex=rf"{API}/channels/\d+/messages", name="send").respond(json={"id": "1"})
    return gateway


@pytest.fixture
async def ctx():
    async with httpx.AsyncClient(timeout=5) as gateway_http, httpx.AsyncClient(timeout=5) as discord_http:
        pipeline = VoicePipeline(gateway_http, base_url=GATEWAY, retry_attempts=1)
        conversations = Conversations(pipeline, MemoryStore(), create_metrics("discord"))
        rest = DiscordREST(discord_http, "bot-token", api_base=API)
        yield DiscordContext(conversations, rest, limits=MediaLimits(max_bytes=10**6))


@pytest.fixture
async def state():
    """nextcord's connection state with June logged in, as the gateway connection would leave it."""
    client = nextcord.Client(intents=intents([]))
    state = client._connection
    state.user = nextcord.ClientUser(
        state=state, data={"id": str(ME), "username": "June", "discriminator": "0", "avatar": None, "bot": True}
    )
    return state


def message(
    state,
    *,
    guild: bool = False,
    content: str = "",
    voice: bool = False,
    audio: str | None = None,
    size: int | None = None,
    mentions: list[dict] | None = None,
    type: int = 0,  # noqa: A002 - the payload's field name
) -> nextcord.Message:
    """A nextcord Message from a MESSAGE_CREATE payload, in a DM or a guild text channel; with `voice`
    a voice message, with `audio` an audio file attachment of that name (both served from CDN)."""
    if guild:
        g = nextcord.Guild(data={"id": str(GUILD), "name": "g", "channels": [], "roles": []}, state=state)
        channel = nextcord.TextChannel(
            state=state,
            guild=g,
            data={"id": str(TEXT_CHANNEL), "type": 0, "name": "general", "position": 0, "guild_id": str(GUILD)},
        )
    else:
        channel = nextcord.DMChannel(
            me=state.user, state=state, data={"id": str(DM), "type": 1, "recipients": [USER_PAYLOAD]}
        )
    attachments = []
    if voice:
        attachments.append(
            {
                "id": "1",
                "filename": "voice-message.ogg",
                "size": len(VOICE) if size is None else size,
                "url": CDN,
                "proxy_url": CDN,
                "content_type": "audio/ogg",
                "duration_secs": 1.0,
                "waveform": "AAAA",
            }
        )
    if audio:
        attachments.append(
            {
                "id": "2",
                "filename": audio,
                "size": len(VOICE) if size is None else size,
                "url": CDN,
                "proxy_url": CDN,
                "content_type": mimetypes.guess_type(audio)[0],
            }
        )
    data = {
        "id": "9001",
        "channel_id": str(channel.id),
        "author": USER_PAYLOAD,
        "content": content,
        "attachments": attachments,
        "embeds": [],
        "mentions": mentions or [],
        "mention_roles": [],
        "pinned": False,
        "mention_everyone": False,
        "tts": False,
        "type": type,
        "timestamp": "2026-01-01T00:00:00+00:00",
        "edited_timestamp": None,
        "flags": 8192 if voice else 0,
    }
    if guild:
        data["guild_id"] = str(GUILD)
    return nextcord.Message(state=state, channel=channel, data=data)


def parts(request: httpx.Request) -> dict[str, bytes]:
    """A multipart/form-data body by field name."""
    raw = b"Content-Type: " + request.headers["content-type"].encode() + b"\r\n\r\n" + request.content
    return {
        p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
        for p in email.message_from_bytes(raw).get_payload()
    }


def sent(routes) -> list[httpx.Request]:
    return [c.request for c in routes["send"].calls]


async def test_voice_message_in_a_dm_is_answered_with_a_discord_voice_message(routes, ctx, state):
    await handle_message(message(state, voice=True), ME, ctx)

    voice, caption = sent(routes)
    assert str(voice.url) == f"{API}/channels/{DM}/messages" and voice.headers["authorization"] == "Bot bot-token"
    form = parts(voice)
    payload = json.loads(form["payload_json"])
    assert payload["flags"] == 1 << 13 and "content" not in payload
    [attachment] = payload["attachments"]
    assert attachment["id"] == 0 and attachment["filename"] == "voice-message.ogg"
    assert attachment["duration_secs"] == pytest.approx(TONE_SECONDS, abs=0.05)
    wave = base64.b64decode(attachment["waveform"])
    assert 1 <= len(wave) <= 256 and max(wave) == 255
    assert is_ogg_opus(form["files[0]"])
    assert payload["message_reference"]["message_id"] == "9001"
    assert routes["cdn"].called and routes["typing"].called
    assert b"OpusHead" in routes["stt"].calls.last.request.content  # the downloaded voice was transcribed
    text = json.loads(caption.content)["content"]
    assert "What is the capital of France?" in text and "Paris." in text
    assert ctx.conversations.metrics.value("voice", "reply") == 1


async def test_where_voice_messages_are_forbidden_the_audio_goes_as_a_plain_attachment(routes, ctx, state):
    routes["send"].side_effect = [
        httpx.Response(400, json={"message": "Cannot send voice messages in this channel", "code": 50173}),
        httpx.Response(200, json={"id": "2"}),
    ]
    await handle_message(message(state, voice=True), ME, ctx)

    refused, fallback = sent(routes)
    assert json.loads(parts(refused)["payload_json"])["flags"] == 1 << 13
    form = parts(fallback)
    payload = json.loads(form["payload_json"])
    assert "flags" not in payload and payload["content"] == "Paris."
    assert payload["attachments"] == [{"id": 0, "filename": "june.ogg"}]
    assert is_ogg_opus(form["files[0]"])


async def test_text_is_answered_where_june_is_mentioned_only(routes, ctx, state):
    await handle_message(message(state, guild=True, content="Hello everyone"), ME, ctx)
    assert not routes["send"].called and not routes["chat"].called

    mention = {**USER_PAYLOAD, "id": str(ME), "username": "June", "bot": True}
    await handle_message(
        message(state, guild=True, content=f"<@{ME}> What is the capital of France?", mentions=[mention]), ME, ctx
    )
    [reply] = sent(routes)
    body = json.loads(reply.content)
    assert str(reply.url) == f"{API}/channels/{TEXT_CHANNEL}/messages"
    assert body["content"] == "Paris." and body["message_reference"]["message_id"] == "9001"
    assert (
        json.loads(routes["chat"].calls.last.request.content)["messages"][-1]["content"]
        == "What is the capital of France?"
    )

    await handle_message(message(state, content=f"<@{ME}>"), ME, ctx)  # a bare mention: the help text
    assert json.loads(sent(routes)[-1].content)["content"] == HELP


async def test_gateway_down_gets_an_apology_and_too_big_a_refusal(routes, ctx, state):
    routes["stt"].side_effect = httpx.ConnectError("refused")
    await handle_message(message(state, voice=True), ME, ctx)
    await handle_message(message(state, voice=True, size=2 * 10**6), ME, ctx)

    told, refusal = (json.loads(r.content)["content"] for r in sent(routes))
    assert told == apology(VoiceError("transcribe", ""))
    assert refusal == TOO_BIG.format(mb=0)
    assert routes["cdn"].call_count == 1
    assert ctx.conversations.metrics.value("voice", "error") == 1
    assert ctx.conversations.metrics.value("voice", "refused") == 1


async def test_a_recording_over_the_length_limit_is_refused_not_an_error(routes, ctx, state):
    routes["cdn"].respond(content=tone(3.0), headers={"content-type": "audio/ogg"})
    ctx = dataclasses.replace(ctx, limits=MediaLimits(max_seconds=2, max_bytes=10**6))
    await handle_message(message(state, voice=True), ME, ctx)

    [refusal] = sent(routes)
    assert json.loads(refusal.content)["content"] == TOO_LONG.format(seconds=2)
    assert routes["cdn"].called and not routes["stt"].called  # measured once downloaded, never transcribed
    assert ctx.conversations.metrics.value("voice", "refused") == 1
    assert ctx.conversations.metrics.value("voice", "error") == 0


async def test_an_audio_file_reaches_speech_under_its_own_name(routes, ctx, state):
    await handle_message(message(state, audio="question.mp3"), ME, ctx)

    stt = routes["stt"].calls.last.request.content
    assert b'filename="question.mp3"' in stt and b"Content-Type: audio/mpeg" in stt  # the container for speech
    assert ctx.conversations.metrics.value("voice", "reply") == 1


async def test_built_from_settings_as_python_m_bots_discord_builds_it(routes, state):
    settings = BotSettings(base_url=GATEWAY, request_timeout=5, retry_attempts=1)
    discord = DiscordSettings(token="bot-token", api_base=API, channels=[TEXT_CHANNEL], max_voice_seconds=2)
    async with build(settings, discord) as ctx:
        await handle_message(message(state, guild=True, content="Hello everyone"), ME, ctx)  # no mention needed here

    [reply] = sent(routes)
    assert (
        str(reply.url) == f"{API}/channels/{TEXT_CHANNEL}/messages"
        and reply.headers["authorization"] == "Bot bot-token"
    )
    assert json.loads(reply.content)["content"] == "Paris."
    assert ctx.limits == MediaLimits(2, discord.max_file_bytes)
    assert ctx.conversations.metrics.bot == "discord" and ctx.conversations.metrics.value("text", "reply") == 1


async def test_bots_own_messages_are_ignored(routes, ctx, state):
    msg = message(state, content="hi")
    msg.author = state.user
    await handle_message(msg, ME, ctx)
    assert not routes["send"].called


def test_waveform_has_at_most_256_points_one_per_100_ms():
    rate = 48000
    short = base64.b64decode(waveform(np.linspace(0, 1, rate), rate))  # 1 s, rising
    assert len(short) == 10 and short[-1] == 255 and list(short) == sorted(short)
    long = base64.b64decode(waveform(np.ones(rate * 60, dtype=np.float32), rate))
    assert len(long) == 256
    assert base64.b64decode(waveform(np.zeros(0), rate)) == b"\x00"


def test_intents_are_minimal():
    plain = intents([])
    assert plain.dm_messages and plain.guild_messages and not plain.message_content and not plain.members
    assert intents([TEXT_CHANNEL]).message_content


async def test_each_message_is_one_span_with_its_outcome(routes, state):
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from core.observability import setup

    exporter = InMemorySpanExporter()
    telemetry = setup("discord", exporter=exporter)
    async with httpx.AsyncClient(timeout=5) as gateway_http, httpx.AsyncClient(timeout=5) as discord_http:
        telemetry.instrument(gateway_http)
        pipeline = VoicePipeline(gateway_http, base_url=GATEWAY, retry_attempts=1)
        conversations = Conversations(pipeline, MemoryStore(), create_metrics("discord"), tracer=telemetry.tracer("t"))
        ctx = DiscordContext(conversations, DiscordREST(discord_http, "bot-token", api_base=API))
        await handle_message(message(state, content="Hello"), ME, ctx)
        routes["chat"].side_effect = httpx.ConnectError("refused")
        await handle_message(message(state, content="Again"), ME, ctx)

    spans = [s for s in exporter.get_finished_spans() if s.name == "bot.message"]
    assert [s.attributes["june.outcome"] for s in spans] == ["reply", "error"]
    assert spans[0].attributes["june.chat"] == f"discord:{DM}" and spans[0].attributes["june.kind"] == "text"
    # The gateway requests are children of the message's span (one trace per message).
    children = [
        s
        for s in exporter.get_finished_spans()
        if s.parent is not None and s.parent.span_id == spans[0].context.span_id
    ]
    assert children


async def test_system_messages_are_ignored(routes, state):
    settings = BotSettings(base_url=GATEWAY, request_timeout=5, retry_attempts=1)
    discord = DiscordSettings(token="bot-token", api_base=API, channels=[TEXT_CHANNEL])
    async with build(settings, discord) as ctx:
        await handle_message(message(state, guild=True, type=7), ME, ctx)  # a member joined the enabled channel
        await handle_message(message(state, guild=True, type=6), ME, ctx)  # a pin
        await handle_message(message(state, type=6), ME, ctx)  # a pin in the DM
        await handle_message(message(state, guild=True, content="a reply to someone", type=19), ME, ctx)
    [reply] = sent(routes)  # only the person's reply was answered
    assert json.loads(reply.content)["content"] == "Paris." and routes["chat"].call_count == 1


async def test_rate_limits_and_5xx_on_posting_are_retried_and_a_lost_answer_not_apologised_for(routes, ctx, state):
    routes["send"].side_effect = [
        httpx.Response(429, json={"message": "You are being rate limited.", "retry_after": 0.3, "global": False}),
        httpx.Response(502, text="<html>Bad Gateway</html>"),
        httpx.Response(200, json={"id": "1"}),
    ]
    await handle_message(message(state, content="Hello"), ME, ctx)
    assert [json.loads(r.content)["content"] for r in sent(routes)] == ["Paris."] * 3  # the same reply, retried

    routes["send"].side_effect = httpx.ReadTimeout("the answer was lost; the post may have gone through")
    await handle_message(message(state, content="Hello again"), ME, ctx)
    contents = [json.loads(r.content)["content"] for r in sent(routes)[3:]]
    assert contents == ["Paris."] and UNEXPECTED not in contents  # sent once, no apology


async def test_a_failed_download_is_told_as_such(routes, ctx, state):
    routes["cdn"].side_effect = httpx.ReadTimeout("hung")
    await handle_message(message(state, voice=True), ME, ctx)
    [reply] = sent(routes)
    assert json.loads(reply.content)["content"] == DOWNLOAD_FAILED and not routes["stt"].called


async def test_a_busy_gateway_is_announced_once_then_answered(routes, ctx, state):
    busy = httpx.Response(503, json={"error": {"message": "busy"}}, headers={"Retry-After": "1"})
    routes["chat"].side_effect = [busy, busy, routes["chat"].return_value]
    ctx.conversations.busy_notice_after = 1.5
    await handle_message(message(state, content="Hello"), ME, ctx)
    assert [json.loads(r.content)["content"] for r in sent(routes)] == [BUSY_NOTICE, "Paris."]


async def test_messages_for_another_bot_are_left_to_it_and_typed_commands_get_the_help(routes, state):
    settings = BotSettings(base_url=GATEWAY, request_timeout=5, retry_attempts=1)
    discord = DiscordSettings(token="bot-token", api_base=API, channels=[TEXT_CHANNEL])
    other_bot = {**USER_PAYLOAD, "id": "2000", "username": "OtherBot", "bot": True}
    async with build(settings, discord) as ctx:
        await handle_message(message(state, guild=True, content="<@2000> play a song", mentions=[other_bot]), ME, ctx)
        assert not routes["send"].called
        await handle_message(message(state, content="/frobnicate"), ME, ctx)
        await handle_message(message(state, guild=True, content="/etc/hosts is broken"), ME, ctx)
    assert [json.loads(r.content)["content"] for r in sent(routes)] == [HELP, "Paris."]
    assert routes["chat"].call_count == 1
