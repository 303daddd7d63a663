"""The Telegram bot end to end: real aiogram Bot + Dispatcher long-polling a fake Bot API server.

The pipeline is real; behind it is either the real stack (`gateway_url`, slow), respx routes for
the gateway's endpoints (fast: respx patches httpx only, aiogram talks aiohttp to the fake
server), or a closed port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import respx

from bots.history import ChatHistory
from bots.pipeline import PipelineError
from bots.settings import BotSettings, TelegramSettings
from bots.telegram.__main__ import create_bot, create_pipeline, serve
from bots.telegram.handlers import GREETING, UNEXPECTED, UNSUPPORTED, create_dispatcher
from tests.bots.conftest import is_ogg_opus, ogg_opus_clip
from tests.bots.fake_bot_api import TOKEN, FakeBotAPI
from tests.bots.test_pipeline import OGG, QUESTION, completion
from tests.clips import wer
from tests.conftest import free_port

pytestmark = pytest.mark.anyio

CHAT = 777
GATEWAY = "http://gateway.test"  # answered by respx, never resolved


@contextlib.asynccontextmanager
async def running_bot(api: FakeBotAPI, settings: BotSettings) -> AsyncIterator[ChatHistory]:
    """June's bot polling `api`, built by the same factories as `python -m bots.telegram`; yields its history."""
    telegram = TelegramSettings(token=TOKEN, api_server=api.url, polling_timeout=1)
    bot = create_bot(telegram)
    history = ChatHistory(settings.history_turns)
    async with httpx.AsyncClient(timeout=settings.request_timeout) as http:
        dispatcher = create_dispatcher(create_pipeline(settings, http), history)
        task = asyncio.create_task(serve(bot, dispatcher, telegram, handle_signals=False))
        try:
            await api.wait_for("getUpdates", timeout=10)
            yield history
        finally:
            if not task.done():
                await dispatcher.stop_polling()
            await asyncio.wait_for(task, 10)


@pytest.fixture
def gateway():
    """respx routes standing in for the gateway (only httpx is patched; aiohttp reaches the fake API)."""
    with respx.mock(base_url=GATEWAY, assert_all_called=False) as router:
        router.get("/v1/models", name="models").respond(json={"data": [{"id": "june-test"}]})
        router.post("/v1/audio/transcriptions", name="stt").respond(
            json={"text": "What is the capital of France?", "language": "en", "duration": 2.0}
        )
        router.post("/v1/chat/completions", name="chat").respond(json=completion("<think>hmm</think>Paris."))
        router.post("/v1/audio/speech", name="tts").respond(content=OGG)
        yield router


def fake_settings(gateway: respx.MockRouter) -> BotSettings:
    """Settings for a bot whose pipeline talks to the `gateway` respx routes."""
    return BotSettings(base_url=GATEWAY, history_turns=4, request_timeout=5)


async def test_startup_registers_commands_and_drops_webhook(gateway):
    async with FakeBotAPI() as api, running_bot(api, fake_settings(gateway)):
        pass
    assert api.calls_to("deleteWebhook") and api.calls_to("setMyCommands")
    commands = api.calls_to("setMyCommands")[0].params["commands"]
    assert {c["command"] for c in commands} == {"start", "reset"}


async def test_voice_message_is_answered_with_a_voice_note(gateway, tmp_path: Path):
    async with FakeBotAPI() as api, running_bot(api, fake_settings(gateway)) as history:
        await api.enqueue_voice(CHAT, b"OggS-the-user-voice")
        [sent] = await api.wait_for("sendVoice", chat_id=CHAT, timeout=10)

    assert sent.files["voice"] == OGG
    assert "What is the capital of France?" in sent.params["caption"] and "Paris." in sent.params["caption"]
    assert "hmm" not in sent.params["caption"]
    assert gateway["stt"].calls.last.request.content.count(b"OggS-the-user-voice") == 1  # downloaded via getFile
    assert api.calls_to("getFile") and api.calls_to("sendChatAction", chat_id=CHAT)
    assert history.messages(CHAT) == [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]


async def test_text_messages_are_answered_with_history_per_chat(gateway):
    async with FakeBotAPI() as api, running_bot(api, fake_settings(gateway)):
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


async def test_commands_and_unsupported_messages(gateway):
    async with FakeBotAPI() as api, running_bot(api, fake_settings(gateway)) as history:
        history.add(CHAT, "old question", "old answer")
        await api.enqueue_message(CHAT, text="/start")
        await api.enqueue_message(CHAT, text="/reset")
        await api.enqueue_message(CHAT, sticker={
            "file_id": "s", "file_unique_id": "us", "type": "regular", "width": 1, "height": 1,
            "is_animated": False, "is_video": False,
        })
        replies = await api.wait_for("sendMessage", chat_id=CHAT, count=3, timeout=10)

    texts = {r.params["text"] for r in replies}
    assert GREETING in texts and UNSUPPORTED in texts
    assert history.messages(CHAT) == []
    assert not gateway["chat"].called


async def test_silence_gets_a_could_not_hear_answer(gateway):
    gateway["stt"].respond(json={"text": "", "language": "en", "duration": 1.0})
    async with FakeBotAPI() as api, running_bot(api, fake_settings(gateway)):
        await api.enqueue_voice(CHAT, b"OggS-silence")
        [reply] = await api.wait_for("sendMessage", chat_id=CHAT, timeout=10)
    assert "couldn't hear" in reply.params["text"]
    assert not api.calls_to("sendVoice")


async def test_unreachable_gateway_gets_an_apology_and_polling_goes_on():
    settings = BotSettings(base_url=f"http://127.0.0.1:{free_port()}", request_timeout=5)
    async with FakeBotAPI() as api, running_bot(api, settings):
        await api.enqueue_voice(CHAT, b"OggS-voice")
        [first] = await api.wait_for("sendMessage", chat_id=CHAT, timeout=15)
        await api.enqueue_message(CHAT, text="Are you there?")
        replies = await api.wait_for("sendMessage", chat_id=CHAT, count=2, timeout=15)

    # Each apology is the failed stage's own message, not the catch-all for unexpected errors.
    assert [r.params["text"] for r in replies] == [
        PipelineError("transcribe", "").user_message,
        PipelineError("chat", "").user_message,
    ]
    assert first.params["text"] != UNEXPECTED
    assert not api.calls_to("sendVoice")


async def test_unexpected_failure_is_apologised_for(gateway):
    async with FakeBotAPI() as api, running_bot(api, fake_settings(gateway)):
        await api.enqueue_voice(CHAT, b"OggS-voice")
        api.files.clear()  # getFile now fails with 400: not a PipelineError
        [reply] = await api.wait_for("sendMessage", chat_id=CHAT, timeout=10)
        await api.enqueue_message(CHAT, text="still there?")
        await api.wait_for("sendMessage", chat_id=CHAT, count=2, timeout=10)
    assert reply.params["text"] == UNEXPECTED
    assert not gateway["stt"].called


@pytest.mark.slow
async def test_voice_and_text_through_the_real_stack(gateway_url: str, tmp_path: Path):
    clip = ogg_opus_clip(QUESTION, tmp_path)
    settings = BotSettings(base_url=gateway_url, max_reply_tokens=48, request_timeout=300)
    async with FakeBotAPI() as api, running_bot(api, settings) as history:
        start = time.monotonic()
        await api.enqueue_voice(CHAT, clip)
        [voice] = await api.wait_for("sendVoice", chat_id=CHAT, timeout=300)
        voice_s = time.monotonic() - start
        start = time.monotonic()
        await api.enqueue_message(CHAT + 1, text="Say hello in one short sentence.")
        [text] = await api.wait_for("sendMessage", chat_id=CHAT + 1, timeout=300)
        text_s = time.monotonic() - start

    assert is_ogg_opus(voice.files["voice"])
    heard = history.messages(CHAT)[0]["content"]
    assert wer(QUESTION, heard) <= 0.2, heard
    assert heard in voice.params["caption"]
    assert text.params["text"].strip() and not text.params["text"].startswith("Sorry")
    print(f"real stack: voice answered in {voice_s:.1f} s, text in {text_s:.1f} s")
