"""The Telegram bot when things go wrong: Telegram's 429/5xx and slow uploads, SIGTERM with messages
in flight, a busy gateway, broken files, and messages that are not for June.

Real aiogram against the fake Bot API server (benchmarks/perf/fake_bot_api.py), the real pipeline;
the gateway answered by respx (or the real speech service where its own answer matters).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal

import httpx
import pytest
import respx

from benchmarks.perf.fake_bot_api import TOKEN, FakeBotAPI
from bots.apologies import BUSY, UNDECODABLE
from bots.conversation import BUSY_NOTICE, DOWNLOAD_FAILED, TOO_SLOW, UNEXPECTED
from bots.settings import TelegramSettings
from bots.telegram.__main__ import build, serve
from bots.telegram.handlers import GREETING, HELP
from tests.bots.conftest import is_ogg_opus
from tests.bots.test_telegram import CHAT, answer, fake_settings, running_bot

pytestmark = pytest.mark.anyio


@pytest.fixture
def gateway(gateway: respx.MockRouter) -> respx.MockRouter:
    gateway.route(host="127.0.0.1").pass_through()  # the bot's own aiohttp never reaches respx anyway
    return gateway


def busy(retry_after: str = "1") -> httpx.Response:
    return httpx.Response(
        503, json={"error": {"message": "busy", "code": "server_busy"}}, headers={"Retry-After": retry_after}
    )


async def settle(api: FakeBotAPI, chat: int, seconds: float = 1.0) -> list[str]:
    """What `chat` got once nothing more has arrived for `seconds`."""
    while True:
        before = len(api.calls)
        await asyncio.sleep(seconds)
        if len(api.calls) == before or all(
            c.method.lower() in ("getupdates", "sendchataction") for c in api.calls[before:]
        ):
            return api.replies(chat)


# --- Telegram's own failures -----------------------------------------------------------------------


async def test_flood_control_on_send_voice_is_waited_out_and_the_voice_arrives(gateway):
    async with FakeBotAPI() as api, running_bot(api, fake_settings()) as june:
        api.fail_next("sendVoice", 429, retry_after=1)
        await api.enqueue_voice(CHAT, b"OggS-voice")
        sends = await api.wait_for("sendVoice", chat_id=CHAT, count=2, timeout=15)
        replies = await settle(api, CHAT)
    assert sends[0].failed and not sends[1].failed and is_ogg_opus(sends[1].files["voice"])  # the upload, again
    assert replies == ["<voice>"]  # the answer, no apology
    assert june.metrics.value("update", "error") == 0


@pytest.mark.parametrize("html", [False, True], ids=["bot-api-502", "proxy-502-page"])
async def test_a_502_on_send_message_is_retried_not_apologised_for(gateway, html):
    async with FakeBotAPI() as api, running_bot(api, fake_settings()):
        api.fail_next("sendMessage", 502, times=2, html=html)
        await api.enqueue_message(CHAT, text="Hello")
        await api.wait_for("sendMessage", chat_id=CHAT, count=3, timeout=15)
        replies = await settle(api, CHAT)
    assert replies == ["Paris."]


async def test_a_send_voice_slower_than_the_request_timeout_gets_no_apology(gateway):
    """aiogram gives up on the upload, Telegram still delivers it: an apology would contradict it."""
    async with FakeBotAPI() as api, running_bot(api, fake_settings(), request_timeout=1) as june:
        api.delay("sendVoice", 2.5)
        await api.enqueue_voice(CHAT, b"OggS-voice")
        await api.wait_for("sendVoice", chat_id=CHAT, timeout=10)
        await asyncio.sleep(3)  # the upload lands; the handler saw a timeout meanwhile
        replies = await settle(api, CHAT)
    assert replies == ["<voice>"] and UNEXPECTED not in replies
    assert len(api.calls_to("sendVoice")) == 1  # not sent twice either
    assert june.metrics.value("update", "error") == 1  # counted, for the operator


# --- shutdown ---------------------------------------------------------------------------------------


async def test_sigterm_finishes_what_is_in_flight_and_leaves_the_rest_for_the_restart(gateway):
    """8 messages in flight at SIGTERM: the 5 quick ones are answered within the grace period, the 3
    slow ones are not confirmed and come again at the next start; nothing is fetched after the signal."""
    slow_release = asyncio.Event()
    seen: list[str] = []

    async def chat(request: httpx.Request) -> httpx.Response:
        text = json.loads(request.content)["messages"][-1]["content"]
        seen.append(text)
        if text.startswith("slow"):
            await slow_release.wait()  # never set in the first run: cut off by the grace period
        else:
            await asyncio.sleep(1.0)  # still in flight when SIGTERM comes
        return answer(f"Re: {text}.")

    gateway["chat"].side_effect = chat
    chats = range(CHAT, CHAT + 8)
    texts = {c: ("quick" if i < 5 else "slow") + f" {i}" for i, c in enumerate(chats)}
    config = TelegramSettings(token=TOKEN, polling_timeout=1, port=0, shutdown_grace=3)
    async with FakeBotAPI() as api:
        config = config.model_copy(update={"api_server": api.url})
        async with build(fake_settings(), config) as june:
            task = asyncio.create_task(serve(june, config, handle_signals=True))
            await api.wait_for("getUpdates", timeout=10)
            ids = {c: await api.enqueue_message(c, text=t) for c, t in texts.items()}
            for _ in range(100):
                if len(seen) == 8:
                    break
                await asyncio.sleep(0.05)
            assert len(seen) == 8, seen
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.2)
            late = await api.enqueue_message(CHAT + 20, text="after the signal")
            polls_before = len(api.calls_to("getUpdates"))
            await asyncio.wait_for(task, 20)
        first_run = {c: api.replies(c) for c in [*chats, CHAT + 20]}
        confirmed = api.confirmed
        assert not any(c.params.get("timeout") not in (None, 0, "0") for c in api.calls_to("getUpdates")[polls_before:])

        # The restart: what was not answered comes again.
        slow_release.set()
        async with running_bot(api, fake_settings()):
            for c in [*list(chats)[5:], CHAT + 20]:
                await api.wait_for("sendMessage", chat_id=c, timeout=15)
            await settle(api, CHAT)
        second_run = {c: api.replies(c) for c in [*chats, CHAT + 20]}

    for i, c in enumerate(chats):
        if i < 5:
            assert first_run[c] == [f"Re: {texts[c]}."] and second_run[c] == first_run[c]  # answered once
        else:
            assert first_run[c] == [] and second_run[c] == [f"Re: {texts[c]}."]  # no apology, then the answer
    assert first_run[CHAT + 20] == [] and second_run[CHAT + 20] == ["Re: after the signal."]
    assert confirmed == min(ids[c] for c in list(chats)[5:]) < late


# --- a busy gateway -----------------------------------------------------------------------------------


async def test_a_busy_gateway_is_waited_for_and_the_user_told_once(gateway):
    ok = gateway["stt"].return_value
    gateway["stt"].side_effect = [busy(), busy(), busy(), ok]
    async with FakeBotAPI() as api, running_bot(api, fake_settings(busy_notice_after=1.5)) as june:
        await api.enqueue_voice(CHAT, b"OggS-voice")
        await api.wait_for("sendVoice", chat_id=CHAT, timeout=20)
        replies = await settle(api, CHAT)
    assert replies == [BUSY_NOTICE, "<voice>"]
    assert gateway["stt"].call_count == 4 and june.metrics.value("voice", "reply") == 1


async def test_a_wait_longer_than_the_deadline_is_told_as_busy_not_too_slow(gateway):
    gateway["stt"].return_value = busy(retry_after="600")
    gateway["chat"].return_value = busy(retry_after="600")
    async with FakeBotAPI() as api, running_bot(api, fake_settings(reply_deadline=60)):
        await api.enqueue_voice(CHAT, b"OggS-voice")
        await api.enqueue_message(CHAT + 1, text="Hello")
        [voice] = await api.wait_for("sendMessage", chat_id=CHAT, timeout=10)  # at once, not after 60 s
        [text] = await api.wait_for("sendMessage", chat_id=CHAT + 1, timeout=10)
    assert voice.params["text"] == text.params["text"] == BUSY
    assert gateway["stt"].call_count == 1 and gateway["chat"].call_count == 1


# --- files ---------------------------------------------------------------------------------------------


async def test_a_hung_download_is_told_as_a_download_failure_not_the_reply_deadline(gateway):
    async with FakeBotAPI() as api, running_bot(api, fake_settings(reply_deadline=30), request_timeout=1):
        api.file_delay = 5
        await api.enqueue_voice(CHAT, b"OggS-voice")
        [reply] = await api.wait_for("sendMessage", chat_id=CHAT, timeout=15)
    assert reply.params["text"] == DOWNLOAD_FAILED != TOO_SLOW
    assert not gateway["stt"].called


async def test_empty_and_garbage_files_are_told_as_undecodable(speech_url: str):
    """The real speech service judges the bytes; the user hears why instead of "try again"."""
    settings = fake_settings().model_copy(update={"base_url": speech_url, "chat_model": "m", "request_timeout": 60})
    async with FakeBotAPI() as api, running_bot(api, settings) as june:
        await api.enqueue_voice(CHAT, b"", file_size=0)
        await api.enqueue_voice(CHAT + 1, b"\x00\x01 definitely not audio " * 50)
        [empty] = await api.wait_for("sendMessage", chat_id=CHAT, timeout=60)
        [garbage] = await api.wait_for("sendMessage", chat_id=CHAT + 1, timeout=60)
    assert empty.params["text"] == UNDECODABLE and garbage.params["text"] == UNDECODABLE
    assert "try again in a moment" not in UNDECODABLE
    assert june.metrics.value("voice", "error") == 2


# --- manners ---------------------------------------------------------------------------------------------


GROUP = -100777


async def test_commands_and_service_messages_in_a_group(gateway):
    member = {"id": 5, "is_bot": False, "first_name": "New"}
    pinned = {"message_id": 1, "date": 0, "chat": {"id": GROUP, "type": "supergroup", "title": "g"}, "text": "hi"}
    cases = {
        "/help@other_bot": None,  # for another bot: silence
        "/help@June_Test_Bot": HELP,  # for June, any case
        "/START": GREETING,
        "/Help": HELP,
        "/frobnicate": HELP,  # unknown: the help text, not the LLM
        "/frobnicate@other_bot please": None,
        "/etc/hosts is broken": "Paris.",  # not a command: the model answers
    }
    async with FakeBotAPI() as api, running_bot(api, fake_settings()) as june:
        for i, text in enumerate(cases):
            await api.enqueue_message(GROUP - i, chat_type="supergroup", user_id=CHAT, text=text)
        await api.enqueue_message(GROUP - 10, chat_type="supergroup", user_id=CHAT, new_chat_members=[member])
        await api.enqueue_message(GROUP - 11, chat_type="supergroup", user_id=CHAT, pinned_message=pinned)
        await api.enqueue_message(GROUP - 12, chat_type="supergroup", user_id=CHAT, new_chat_title="Renamed")
        await api.enqueue_message(GROUP - 13, chat_type="supergroup", user_id=CHAT, left_chat_member=member)
        await api.wait_for("sendMessage", count=sum(1 for v in cases.values() if v), timeout=10)
        await settle(api, GROUP)
        got = {i: api.replies(GROUP - i) for i in [*range(len(cases)), 10, 11, 12, 13]}
        assert june.metrics.value("other", "refused") == 0
    for i, expected in enumerate(cases.values()):
        assert got[i] == ([expected] if expected else []), (list(cases)[i], got[i])
    assert got[10] == got[11] == got[12] == got[13] == []
    assert gateway["chat"].call_count == 1
