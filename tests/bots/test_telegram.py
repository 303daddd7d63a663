"""The Telegram bot end to end: real aiogram Bot + Dispatcher long-polling a fake Bot API server.

The pipeline is real; behind it is either the real stack (`gateway_url`, slow), respx routes for
the gateway's endpoints (fast: respx patches httpx only, aiogram talks aiohttp to the fake
server), a real gateway whose speech upstream is a closed port, or a closed port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import respx

from benchmarks.perf.fake_bot_api import TOKEN, FakeBotAPI
from bots.apologies import apology
from bots.conversation import DOWNLOAD_FAILED, NOT_ALLOWED, RATE_LIMITED, TOO_BIG, TOO_LONG, TOO_SLOW, UNEXPECTED
from bots.settings import BotSettings, TelegramSettings
from bots.telegram.__main__ import TelegramBot, build, serve
from bots.telegram.handlers import GREETING, HELP, TEXT_LIMIT, UNSUPPORTED
from core.voice_errors import VoiceError
from tests.bots.conftest import GATEWAY, is_ogg_opus, ogg_opus_clip, sse, stream_response
from tests.bots.test_pipeline import QUESTION
from tests.clips import wer
from tests.conftest import free_port, run_service

pytestmark = pytest.mark.anyio

CHAT = 777
KEY = f"telegram:{CHAT}"


@contextlib.asynccontextmanager
async def running_bot(api: FakeBotAPI, settings: BotSettings, **telegram: object) -> AsyncIterator[TelegramBot]:
    """June's bot polling `api`, built by the same factories as `python -m bots.telegram`."""
    config = TelegramSettings(token=TOKEN, api_server=api.url, polling_timeout=1, **{"port": 0, **telegram})
    async with build(settings, config) as june:
        task = asyncio.create_task(serve(june, config, handle_signals=False))
        try:
            await api.wait_for("getUpdates", timeout=10)
            yield june
        finally:
            june.stop()
            await asyncio.wait_for(task, 40)


@pytest.fixture
def gateway(gateway: respx.MockRouter) -> respx.MockRouter:
    """The shared gateway routes (conftest), with a reply that starts with reasoning and the bot's
    own HTTP port let through (aiogram talks aiohttp to the fake Bot API: respx never sees it)."""
    gateway["chat"].return_value = stream_response(sse("<think>hmm</think>Paris."))
    gateway.route(host="127.0.0.1").pass_through()
    return gateway


def fake_settings(**overrides: object) -> BotSettings:
    """Settings for a bot whose pipeline talks to the `gateway` respx routes."""
    return BotSettings(base_url=GATEWAY, history_turns=4, request_timeout=5, **overrides)


def answer(reply: str) -> httpx.Response:
    return stream_response(sse(reply))


async def test_startup_registers_commands_and_serves_health_and_metrics(gateway):
    port = free_port()
    async with FakeBotAPI() as api, running_bot(api, fake_settings(), port=port, host="127.0.0.1") as june:
        async with httpx.AsyncClient() as client:
            health = (await client.get(f"http://127.0.0.1:{port}/health")).json()
            await api.enqueue_message(CHAT, text="Hello")
            await api.wait_for("sendMessage", chat_id=CHAT)
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    assert api.calls_to("deleteWebhook") and api.calls_to("setMyCommands")
    commands = api.calls_to("setMyCommands")[0].params["commands"]
    assert {c["command"] for c in commands} == {"start", "help", "reset", "voice", "captions", "status"}
    assert health["status"] == "ok" and health["bot"] == "telegram"
    assert 'june_bot_messages_total{bot="telegram",kind="text",outcome="reply"} 1.0' in metrics
    assert june.metrics.value("text", "reply") == 1


@pytest.mark.parametrize("kind", ["voice", "audio", "video_note"])
async def test_recordings_are_answered_with_a_voice_note(gateway, kind):
    async with FakeBotAPI() as api, running_bot(api, fake_settings()) as june:
        await api.enqueue_voice(CHAT, b"OggS-the-user-voice", kind=kind)
        [sent] = await api.wait_for("sendVoice", chat_id=CHAT, timeout=10)

    assert is_ogg_opus(sent.files["voice"]) and int(sent.params["duration"]) == 1
    assert "What is the capital of France?" in sent.params["caption"] and "Paris." in sent.params["caption"]
    assert "hmm" not in sent.params["caption"]
    stt = gateway["stt"].calls.last.request.content
    assert stt.count(b"OggS-the-user-voice") == 1  # downloaded via getFile
    expected_name = {"voice": b"voice.ogg", "audio": b"audio.mp3", "video_note": b"video-note.mp4"}[kind]
    assert b'filename="' + expected_name + b'"' in stt
    actions = [c.params["action"] for c in api.calls_to("sendChatAction", chat_id=CHAT)]
    assert actions and set(actions) == {"record_voice"}
    assert await june.conversations.store.messages(KEY) == [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]
    assert june.metrics.value("voice", "reply") == 1


async def test_preferences_captions_off_and_voice_on(gateway):
    async with FakeBotAPI() as api, running_bot(api, fake_settings()):
        await api.enqueue_message(CHAT, text="/captions off")
        await api.enqueue_message(CHAT, text="/voice on")
        await api.enqueue_message(CHAT, text="/voice maybe")
        await api.wait_for("sendMessage", chat_id=CHAT, count=3)
        await api.enqueue_voice(CHAT, b"OggS-voice")
        [voice] = await api.wait_for("sendVoice", chat_id=CHAT)
        await api.enqueue_message(CHAT, text="Hello")
        await api.wait_for("sendVoice", chat_id=CHAT, count=2)
        texts = await api.wait_for("sendMessage", chat_id=CHAT, count=4)

    assert "caption" not in voice.params
    assert [t.params["text"] for t in texts] == ["Captions off.", "Voice on.", "Use /voice on or /voice off.", "Paris."]


async def test_a_caption_too_long_for_telegram_becomes_a_follow_up_message(gateway):
    long_question = "Tell me more about that. " * 50  # > 1024 characters with the reply
    gateway["stt"].respond(json={"text": long_question, "language": "en", "duration": 30.0})
    async with FakeBotAPI() as api, running_bot(api, fake_settings()):
        await api.enqueue_voice(CHAT, b"OggS-voice")
        [voice] = await api.wait_for("sendVoice", chat_id=CHAT)
        [follow_up] = await api.wait_for("sendMessage", chat_id=CHAT)
    assert "caption" not in voice.params
    assert long_question.strip() in follow_up.params["text"] and follow_up.params["text"].endswith("Paris.")


async def test_text_messages_are_answered_with_history_per_chat(gateway):
    async with FakeBotAPI() as api, running_bot(api, fake_settings()):
        await api.enqueue_message(CHAT, text="Hello")
        await api.wait_for("sendMessage", chat_id=CHAT, timeout=10)
        await api.enqueue_message(CHAT, text="And Spain?")
        replies = await api.wait_for("sendMessage", chat_id=CHAT, count=2, timeout=10)
        await api.enqueue_message(CHAT + 1, text="Other chat")
        await api.wait_for("sendMessage", chat_id=CHAT + 1, timeout=10)

    assert [r.params["text"] for r in replies] == ["Paris.", "Paris."]
    contents = [[m["content"] for m in json.loads(c.request.content)["messages"][1:]] for c in gateway["chat"].calls]
    assert contents == [["Hello"], ["Hello", "Paris.", "And Spain?"], ["Other chat"]]
    assert not gateway["tts"].called
    assert {c.params["action"] for c in api.calls_to("sendChatAction", chat_id=CHAT)} == {"typing"}


async def test_long_replies_are_split_on_sentences_and_bad_markdown_goes_plain(gateway):
    sentence = "This sentence is part of a very long answer. "
    long_reply = sentence * (2 * TEXT_LIMIT // len(sentence) + 3)
    gateway["chat"].side_effect = [answer(long_reply), answer("Use *bold for emphasis.")]
    async with FakeBotAPI() as api, running_bot(api, fake_settings()):
        await api.enqueue_message(CHAT, text="Talk a lot")
        await api.wait_for("sendMessage", chat_id=CHAT, count=3)
        await api.enqueue_message(CHAT, text="Markdown please")
        calls = await api.wait_for("sendMessage", chat_id=CHAT, count=5)

    pieces = [c.params["text"] for c in calls[:3]]
    assert all(len(p) <= TEXT_LIMIT and p.endswith("answer.") for p in pieces)
    assert " ".join(pieces) == long_reply.strip()
    # Telegram rejected the Markdown ("can't parse entities"); the same text went again, plain.
    assert [c.params.get("parse_mode") for c in calls[3:]] == ["Markdown", None]
    assert calls[4].params["text"] == "Use *bold for emphasis."


async def test_commands_and_unsupported_messages(gateway):
    async with FakeBotAPI() as api, running_bot(api, fake_settings()) as june:
        await june.conversations.store.add(KEY, "old question", "old answer")
        await api.enqueue_message(CHAT, text="/start")
        await api.enqueue_message(CHAT, text="/help")
        await api.enqueue_message(CHAT, text="/reset")
        await api.enqueue_message(
            CHAT,
            sticker={
                "file_id": "s",
                "file_unique_id": "us",
                "type": "regular",
                "width": 1,
                "height": 1,
                "is_animated": False,
                "is_video": False,
            },
        )
        replies = await api.wait_for("sendMessage", chat_id=CHAT, count=4, timeout=10)
        await api.enqueue_message(CHAT, text="/status")
        status = (await api.wait_for("sendMessage", chat_id=CHAT, count=5, timeout=10))[-1]
        assert await june.conversations.store.messages(KEY) == []

    texts = {r.params["text"] for r in replies}
    assert {GREETING, HELP, UNSUPPORTED} <= texts
    assert not gateway["chat"].called
    assert status.params["text"] == "Language model: ok (june-test)\nSpeech: ok"


async def test_limits_get_a_friendly_reply_without_downloading(gateway):
    async with (
        FakeBotAPI() as api,
        running_bot(api, fake_settings(), max_voice_seconds=30, max_file_bytes=1000) as june,
    ):
        await api.enqueue_voice(CHAT, b"OggS-long", duration=31)
        await api.enqueue_voice(CHAT, b"OggS-big", duration=3, file_size=5000)
        replies = await api.wait_for("sendMessage", chat_id=CHAT, count=2)
    assert sorted(r.params["text"] for r in replies) == sorted([TOO_LONG.format(seconds=30), TOO_BIG.format(mb=0)])
    assert not api.calls_to("getFile") and not gateway["stt"].called
    assert june.metrics.value("voice", "refused") == 2


async def test_rate_limit_and_allow_list(gateway):
    async with FakeBotAPI() as api, running_bot(api, fake_settings(rate_limit=1, allowed_ids=[CHAT])) as june:
        await api.enqueue_message(CHAT, text="one")
        await api.wait_for("sendMessage", chat_id=CHAT)
        await api.enqueue_message(CHAT, text="two")
        await api.enqueue_message(CHAT + 1, text="stranger")
        replies = await api.wait_for("sendMessage", chat_id=CHAT, count=2)
        [stranger] = await api.wait_for("sendMessage", chat_id=CHAT + 1)
    assert replies[1].params["text"] == RATE_LIMITED
    assert stranger.params["text"] == NOT_ALLOWED
    assert gateway["chat"].call_count == 1 and june.metrics.value("text", "refused") == 2


async def test_two_replicas_share_a_users_rate_limit_through_redis(gateway, redis_url):
    """The scale-out overlay's two Telegram replicas (here: two bots, each polling its own fake Bot
    API) count a user's messages together when JUNE_BOT_REDIS_URL is set."""
    user = 10_000 + uuid.uuid4().int % 1_000_000  # a user no other test (or run) has counted
    settings = fake_settings(rate_limit=1, rate_window=3600, redis_url=redis_url)
    async with FakeBotAPI() as api_a, FakeBotAPI() as api_b:
        async with running_bot(api_a, settings) as a, running_bot(api_b, settings) as b:
            await api_a.enqueue_message(user, text="one")
            [first] = await api_a.wait_for("sendMessage", chat_id=user)
            await api_b.enqueue_message(user, text="two")
            [second] = await api_b.wait_for("sendMessage", chat_id=user)
    assert first.params["text"] == "Paris." and second.params["text"] == RATE_LIMITED
    assert gateway["chat"].call_count == 1
    assert a.metrics.value("text", "reply") == 1 and b.metrics.value("text", "refused") == 1


async def test_a_slow_model_gets_an_apology_within_the_deadline(gateway):
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return answer("too late")

    gateway["chat"].side_effect = slow
    async with FakeBotAPI() as api, running_bot(api, fake_settings(reply_deadline=1.0)) as june:
        await api.enqueue_message(CHAT, text="Hello?")
        [reply] = await api.wait_for("sendMessage", chat_id=CHAT, timeout=15)
    assert reply.params["text"] == TOO_SLOW
    assert june.metrics.value("text", "error") == 1


async def test_messages_in_one_chat_wait_for_each_other(gateway):
    """Two messages sent at once: the second request already contains the first exchange."""
    answers = iter([answer("First answer."), answer("Second answer.")])

    async def slow_first(request: httpx.Request) -> httpx.Response:
        response = next(answers)
        if b"one" in request.content and b"two" not in request.content:
            await asyncio.sleep(0.5)  # without the chat's lock, "two" would be asked meanwhile
        return response

    gateway["chat"].side_effect = slow_first
    async with FakeBotAPI() as api, running_bot(api, fake_settings()):
        await api.enqueue_message(CHAT, text="one")
        await api.enqueue_message(CHAT, text="two")
        await api.wait_for("sendMessage", chat_id=CHAT, count=2)
    second = [m["content"] for m in json.loads(gateway["chat"].calls[1].request.content)["messages"][1:]]
    assert second == ["one", "First answer.", "two"]


async def test_silence_gets_a_could_not_hear_answer(gateway):
    gateway["stt"].respond(json={"text": "", "language": "en", "duration": 1.0})
    async with FakeBotAPI() as api, running_bot(api, fake_settings()):
        await api.enqueue_voice(CHAT, b"OggS-silence")
        [reply] = await api.wait_for("sendMessage", chat_id=CHAT, timeout=10)
    assert "couldn't hear" in reply.params["text"]
    assert not api.calls_to("sendVoice")


async def test_unreachable_gateway_gets_an_apology_and_polling_goes_on():
    settings = BotSettings(base_url=f"http://127.0.0.1:{free_port()}", request_timeout=5, retry_attempts=2)
    async with FakeBotAPI() as api, running_bot(api, settings) as june:
        await api.enqueue_voice(CHAT, b"OggS-voice")
        [first] = await api.wait_for("sendMessage", chat_id=CHAT, timeout=15)
        await api.enqueue_message(CHAT, text="Are you there?")
        replies = await api.wait_for("sendMessage", chat_id=CHAT, count=2, timeout=15)

    # Each apology is the failed stage's own message, not the catch-all for unexpected errors.
    assert [r.params["text"] for r in replies] == [
        apology(VoiceError("transcribe", "")),
        apology(VoiceError("chat", "")),
    ]
    assert first.params["text"] != UNEXPECTED
    assert not api.calls_to("sendVoice")
    assert june.metrics.value("voice", "error") == 1 and june.metrics.value("text", "error") == 1


async def test_unexpected_failure_is_apologised_for(gateway):
    async with FakeBotAPI() as api, running_bot(api, fake_settings()) as june:
        await api.enqueue_voice(CHAT, b"OggS-voice")
        api.files.clear()  # getFile now fails with 400: not a VoiceError
        [reply] = await api.wait_for("sendMessage", chat_id=CHAT, timeout=10)
        await api.enqueue_message(CHAT, text="still there?")
        await api.wait_for("sendMessage", chat_id=CHAT, count=2, timeout=10)
    assert reply.params["text"] == DOWNLOAD_FAILED  # not the catch-all apology, nor the reply deadline
    assert not gateway["stt"].called
    assert june.metrics.value("voice", "error") == 1  # the core caught the failed download


async def test_webhook_mode_checks_the_secret_token(gateway):
    port = free_port()
    config = TelegramSettings(
        token=TOKEN,
        webhook_url="https://june.example/telegram/webhook",
        webhook_secret="s3cret",
        host="127.0.0.1",
        port=port,
    )
    async with FakeBotAPI() as api:
        config = config.model_copy(update={"api_server": api.url})
        async with build(fake_settings(), config) as june:
            task = asyncio.create_task(serve(june, config))
            try:
                [hook] = await api.wait_for("setWebhook", timeout=10)
                url = f"http://127.0.0.1:{port}/telegram/webhook"
                async with httpx.AsyncClient() as client:
                    for _ in range(50):  # the site starts right before setWebhook
                        with contextlib.suppress(httpx.ConnectError):
                            await client.get(f"http://127.0.0.1:{port}/health")
                            break
                        await asyncio.sleep(0.1)
                    forged = await client.post(
                        url, json=api.update(CHAT, "forged"), headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}
                    )
                    real = await client.post(
                        url, json=api.update(CHAT, "Hello"), headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"}
                    )
                    [reply] = await api.wait_for("sendMessage", chat_id=CHAT, timeout=10)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    assert hook.params["url"] == "https://june.example/telegram/webhook" and hook.params["secret_token"] == "s3cret"
    assert forged.status_code == 401 and real.status_code == 200
    assert reply.params["text"] == "Paris." and gateway["chat"].call_count == 1
    assert not api.calls_to("getUpdates")


@pytest.mark.slow
async def test_speech_down_gets_an_apology_and_text_still_works(llm_url: str, logs_dir: Path, tmp_path: Path):
    """A real gateway whose speech upstream is a closed port: voice → apology; the bot keeps answering."""
    port = free_port()
    env = {
        "JUNE_GATEWAY_HOST": "127.0.0.1",
        "JUNE_GATEWAY_PORT": str(port),
        "JUNE_GATEWAY_LLM_URL": llm_url,
        "JUNE_GATEWAY_SPEECH_URL": f"http://127.0.0.1:{free_port()}",
    }
    with run_service("gateway-no-speech", ["-m", "gateway"], env, f"http://127.0.0.1:{port}/health", logs_dir):
        settings = BotSettings(
            base_url=f"http://127.0.0.1:{port}", max_reply_tokens=16, request_timeout=60, retry_attempts=2
        )
        async with FakeBotAPI() as api, running_bot(api, settings) as june:
            await api.enqueue_voice(CHAT, ogg_opus_clip(QUESTION, tmp_path))
            [sorry] = await api.wait_for("sendMessage", chat_id=CHAT, timeout=60)
            await api.enqueue_message(CHAT, text="Say hi.")
            [_, text] = await api.wait_for("sendMessage", chat_id=CHAT, count=2, timeout=120)
    assert sorry.params["text"] == apology(VoiceError("transcribe", ""))
    assert text.params["text"].strip() and not text.params["text"].startswith("Sorry")
    assert june.metrics.value("voice", "error") == 1 and june.metrics.value("text", "reply") == 1


@pytest.mark.slow
async def test_voice_and_text_through_the_real_stack(gateway_url: str, tmp_path: Path):
    clip = ogg_opus_clip(QUESTION, tmp_path)
    settings = BotSettings(base_url=gateway_url, max_reply_tokens=48, request_timeout=300)
    async with FakeBotAPI() as api, running_bot(api, settings) as june:
        start = time.monotonic()
        await api.enqueue_voice(CHAT, clip)
        [voice] = await api.wait_for("sendVoice", chat_id=CHAT, timeout=300)
        voice_s = time.monotonic() - start
        start = time.monotonic()
        await api.enqueue_message(CHAT + 1, text="Say hello in one short sentence.")
        [text] = await api.wait_for("sendMessage", chat_id=CHAT + 1, timeout=300)
        text_s = time.monotonic() - start
        heard = (await june.conversations.store.messages(KEY))[0]["content"]

    assert is_ogg_opus(voice.files["voice"])
    assert wer(QUESTION, heard) <= 0.2, heard
    assert heard in voice.params["caption"]
    assert text.params["text"].strip() and not text.params["text"].startswith("Sorry")
    print(f"real stack: voice answered in {voice_s:.1f} s, text in {text_s:.1f} s")
