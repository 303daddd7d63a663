"""VoicePipeline against the gateway's HTTP surface: faked with respx at the network edge, then for real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import respx

from bots.history import ChatHistory
from bots.pipeline import EmptyTranscript, PipelineError, VoicePipeline, speakable, strip_reasoning
from tests.bots.conftest import is_ogg_opus, ogg_opus_clip
from tests.clips import wer

pytestmark = pytest.mark.anyio

# A question whisper "base" hears right from espeak-ng (it hears "France" as "friends").
QUESTION = "What is the capital of Germany?"

BASE = "http://gateway.test"
OGG = b"OggS\x00\x02" + b"\x00" * 22 + b"OpusHead" + b"\x01" * 40


def completion(content: str | None, **message_extra: object) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "june-test",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content, **message_extra}}
        ],
    }


@pytest.fixture
def gateway():
    """Strict respx routes for the four gateway endpoints; an unrouted request fails the test."""
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.get("/v1/models", name="models").respond(json={"object": "list", "data": [{"id": "june-test"}]})
        router.post("/v1/audio/transcriptions", name="stt").respond(
            json={"text": " What is the capital of France? ", "language": "en", "duration": 2.1}
        )
        router.post("/v1/chat/completions", name="chat").respond(json=completion("Paris."))
        router.post("/v1/audio/speech", name="tts").respond(content=OGG, headers={"content-type": "audio/ogg"})
        yield router


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def make_pipeline(http: httpx.AsyncClient, **kwargs) -> VoicePipeline:
    return VoicePipeline(http, base_url=BASE, **kwargs)


def sent_json(route: respx.Route, n: int = -1) -> dict:
    return json.loads(route.calls[n].request.content)


async def test_voice_exchange_transcribes_chats_and_speaks(gateway, http):
    result = await make_pipeline(http, system_prompt="Be brief.").run_voice(b"OggS-voice", [])

    assert result.transcript == "What is the capital of France?"
    assert result.reply == "Paris."
    assert result.audio == OGG
    stt_request = gateway["stt"].calls.last.request
    assert b"OggS-voice" in stt_request.content and b'name="file"' in stt_request.content
    chat = sent_json(gateway["chat"])
    assert chat["model"] == "june-test"  # first id from /v1/models
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    speech = sent_json(gateway["tts"])
    assert speech["input"] == "Paris." and speech["response_format"] == "opus"
    t = result.timings
    assert t.transcribe is not None and t.speak is not None
    assert 0 <= t.transcribe <= t.total and 0 <= t.chat <= t.total and 0 <= t.speak <= t.total
    assert t.transcribe + t.chat + t.speak <= t.total + 1e-6


async def test_reasoning_is_never_spoken_nor_remembered(gateway, http):
    gateway["chat"].respond(
        json=completion(
            "<think>The user wants SECRET-1.</think>**Paris** is the `capital`.\n# Done",
            reasoning="SECRET-2 chain of thought",
            reasoning_content="SECRET-3 chain of thought",
        )
    )
    pipeline, history = make_pipeline(http), ChatHistory(max_turns=4)

    result = await pipeline.run_voice(b"voice", history.messages(1))
    history.add(1, result.transcript, result.reply)
    await pipeline.run_text("And of Spain?", history.messages(1))

    assert "SECRET" not in result.reply
    assert result.reply == "**Paris** is the `capital`.\n# Done"
    spoken = sent_json(gateway["tts"])["input"]
    assert spoken == "Paris is the capital . Done"
    assert "SECRET" not in json.dumps(history.messages(1))
    second_chat = gateway["chat"].calls.last.request.content.decode()
    assert "SECRET" not in second_chat
    assert sent_json(gateway["chat"])["messages"][2] == {"role": "assistant", "content": result.reply}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("<think>a</think>Hello<think>b</think> there", "Hello there"),
        ("<think>still thinking when the tokens ran out", ""),
        ("Answer first. <think>then rambling", "Answer first."),
        ("reasoning whose opening tag was in the prompt</think>\n\nHi!", "Hi!"),
        ("<THINK>\nx\n</THINK>Ok", "Ok"),
        ("No reasoning at all.", "No reasoning at all."),
    ],
)
def test_strip_reasoning(content, expected):
    assert strip_reasoning(content) == expected


def test_speakable_drops_markdown_symbols():
    assert speakable("## Title\n* **bold** and `code`\n```py\nx\n```") == "Title bold and code py x"


async def test_reply_that_is_only_reasoning_is_an_error_and_not_spoken(gateway, http):
    gateway["chat"].respond(json=completion("<think>no answer yet", reasoning_content="hmm"))
    with pytest.raises(PipelineError) as caught:
        await make_pipeline(http).run_voice(b"voice", [])
    assert caught.value.stage == "chat"
    assert not gateway["tts"].called


async def test_history_is_bounded_in_the_store_and_in_the_request(gateway, http):
    history = ChatHistory(max_turns=2)
    for i in range(3):
        history.add("chat", f"q{i}", f"a{i}")
    history.add("other", "x", "y")
    assert [m["content"] for m in history.messages("chat")] == ["q1", "a1", "q2", "a2"]
    assert len(history.messages("other")) == 2

    await make_pipeline(http, max_history_turns=1, system_prompt="S").run_text("q3", history.messages("chat"))
    assert [m["content"] for m in sent_json(gateway["chat"])["messages"]] == ["S", "q2", "a2", "q3"]

    await make_pipeline(http, max_history_turns=0, system_prompt="S").run_text("q3", history.messages("chat"))
    assert [m["content"] for m in sent_json(gateway["chat"])["messages"]] == ["S", "q3"]

    history.clear("chat")
    assert history.messages("chat") == []
    assert ChatHistory(max_turns=0).messages("x") == []


async def test_pipeline_does_not_modify_the_history_it_is_given(gateway, http):
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    await make_pipeline(http).run_voice(b"voice", history)
    assert history == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


async def test_chat_model_is_looked_up_once_or_taken_from_settings(gateway, http):
    pipeline = make_pipeline(http)
    await pipeline.run_text("one", [])
    await pipeline.run_text("two", [])
    assert gateway["models"].call_count == 1

    await make_pipeline(http, chat_model="configured").run_text("three", [])
    assert gateway["models"].call_count == 1
    assert sent_json(gateway["chat"])["model"] == "configured"


async def test_run_text_speaks_only_when_asked(gateway, http):
    quiet = await make_pipeline(http).run_text("hello", [])
    assert quiet.audio is None and quiet.timings.speak is None and quiet.timings.transcribe is None
    assert not gateway["tts"].called and not gateway["stt"].called

    loud = await make_pipeline(http).run_text("hello", [], speak=True)
    assert loud.audio == OGG and loud.timings.speak is not None


async def test_voice_and_language_are_sent_only_when_set(gateway, http):
    await make_pipeline(http).run_voice(b"voice", [])
    assert "voice" not in sent_json(gateway["tts"])
    assert b'name="language"' not in gateway["stt"].calls.last.request.content

    await make_pipeline(http, voice="af_heart", language="en").run_voice(b"voice", [])
    assert sent_json(gateway["tts"])["voice"] == "af_heart"
    assert b'name="language"\r\n\r\nen\r\n' in gateway["stt"].calls.last.request.content


async def test_api_key_is_sent_as_bearer_to_every_endpoint(gateway, http):
    await make_pipeline(http, api_key="sk-june").run_voice(b"voice", [])
    for name in ("models", "stt", "chat", "tts"):
        assert gateway[name].calls.last.request.headers["authorization"] == "Bearer sk-june"


async def test_empty_transcript_is_its_own_error(gateway, http):
    gateway["stt"].respond(json={"text": "  ", "language": "en", "duration": 1.0})
    with pytest.raises(EmptyTranscript) as caught:
        await make_pipeline(http).run_voice(b"silence", [])
    assert caught.value.stage == "transcribe"
    assert "hear" in caught.value.user_message
    assert not gateway["chat"].called


@pytest.mark.parametrize(
    ("route", "failure", "stage"),
    [
        ("stt", httpx.Response(500, json={"error": {"message": "boom"}}), "transcribe"),
        ("stt", httpx.Response(200, json={"unexpected": True}), "transcribe"),
        ("models", httpx.Response(503, text="down"), "chat"),
        ("chat", httpx.ReadTimeout("slow"), "chat"),
        ("chat", httpx.Response(502, text="bad gateway"), "chat"),
        ("tts", httpx.ConnectError("refused"), "speak"),
        ("tts", httpx.Response(200, json={"not": "audio"}), "speak"),
    ],
)
async def test_upstream_failures_become_pipeline_errors_with_their_stage(gateway, http, route, failure, stage):
    if isinstance(failure, Exception):
        gateway[route].side_effect = failure
    else:
        gateway[route].return_value = failure
    with pytest.raises(PipelineError) as caught:
        await make_pipeline(http).run_voice(b"voice", [])
    assert caught.value.stage == stage
    assert BASE not in caught.value.user_message and "50" not in caught.value.user_message


async def test_unreachable_gateway_is_a_pipeline_error():
    from tests.conftest import free_port

    async with httpx.AsyncClient(timeout=5) as client:
        pipeline = VoicePipeline(client, base_url=f"http://127.0.0.1:{free_port()}", chat_model="m")
        with pytest.raises(PipelineError) as caught:
            await pipeline.run_text("hello", [])
    assert caught.value.stage == "chat"


@pytest.mark.slow
async def test_voice_exchange_through_the_real_gateway(gateway_url: str, tmp_path: Path):
    clip = ogg_opus_clip(QUESTION, tmp_path)
    async with httpx.AsyncClient(timeout=300) as client:
        pipeline = VoicePipeline(client, base_url=gateway_url, max_reply_tokens=48)
        result = await pipeline.run_voice(clip, [])

    assert wer(QUESTION, result.transcript) <= 0.2, result.transcript
    assert result.reply.strip()
    assert "<think>" not in result.reply
    assert result.audio is not None and is_ogg_opus(result.audio)
    print(f"real gateway timings: {result.timings}")


def test_pipeline_imports_no_bot_library():
    code = "import sys, bots.pipeline, bots.history, bots.settings; print([m for m in sys.modules if m.split('.')[0] in ('aiogram', 'nextcord')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
