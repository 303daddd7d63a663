"""VoicePipeline against the gateway's HTTP surface: faked with respx at the network edge, then for real."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import respx

from bots.apologies import AUDIO_TOO_BIG, BUSY, UNDECODABLE, apology
from bots.history import to_messages
from core.audio import decode
from core.busy import patience
from core.voice import SAMPLE_RATE, VoicePipeline
from core.voice_client import Transcript, VoiceClient
from core.voice_errors import EmptyTranscript, VoiceError
from tests.bots.conftest import GATEWAY, TONE_SECONDS, WAV, is_ogg_opus, ogg_opus_clip, sse, stream_response
from tests.clips import wer
from tests.conftest import TTS_ENGINES

pytestmark = pytest.mark.anyio

# A question whisper "base" hears right from espeak-ng (it hears "France" as "friends").
QUESTION = "What is the capital of Germany?"


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def make_pipeline(http: httpx.AsyncClient, **kwargs) -> VoicePipeline:
    return VoicePipeline(http, base_url=GATEWAY, **kwargs)


def sent_json(route: respx.Route, n: int = -1) -> dict:
    return json.loads(route.calls[n].request.content)


async def test_voice_exchange_transcribes_chats_and_speaks(gateway, http):
    result = await make_pipeline(http, system_prompt="Be brief.").run_voice(b"OggS-voice", [])

    assert result.transcript == "What is the capital of France?"
    assert result.reply == "Paris."
    assert result.audio is not None and is_ogg_opus(result.audio)
    assert result.audio_seconds == pytest.approx(TONE_SECONDS, abs=0.05)
    assert len(decode(result.audio, SAMPLE_RATE)) / SAMPLE_RATE == pytest.approx(TONE_SECONDS, abs=0.05)
    stt_request = gateway["stt"].calls.last.request
    assert b"OggS-voice" in stt_request.content and b'name="file"' in stt_request.content
    chat = sent_json(gateway["chat"])
    assert chat["model"] == "june-test" and chat["stream"] is True  # first id from /v1/models
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    speech = sent_json(gateway["tts"])
    assert speech["input"] == "Paris." and speech["response_format"] == "wav"
    t = result.timings
    assert t.transcribe is not None and t.speak is not None and t.first_sentence is not None
    assert 0 <= t.transcribe <= t.total and 0 <= t.chat <= t.total and 0 <= t.speak <= t.total
    assert t.transcribe + t.chat + t.speak <= t.total + 1e-6


class SlowStream(httpx.AsyncByteStream):
    """A chat stream that holds its second sentence back until `released()` is true (or `max_wait` s pass)."""

    def __init__(self, first: str, second: str, released, max_wait: float) -> None:
        self.first, self.second, self.released, self.max_wait = first, second, released, max_wait
        self.synth_calls_before_second: int | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        events = sse(self.first, self.second).split(b"\n\n")
        yield b"\n\n".join(events[:2]) + b"\n\n"  # role chunk + first sentence
        for _ in range(int(self.max_wait * 100)):
            if self.released():
                break
            await asyncio.sleep(0.01)
        self.synth_calls_before_second = self.released()
        yield b"\n\n".join(events[2:])


@pytest.mark.parametrize("overlap", [True, False])
async def test_first_sentence_is_synthesised_while_the_rest_is_generated(gateway, http, overlap):
    first, second = "The capital of France is Paris. ", "It is also the largest city of France."
    # Overlapped, synthesis starts at once (waits up to 5 s on a loaded machine); sequential never does.
    stream = SlowStream(first, second, lambda: gateway["tts"].call_count, 5.0 if overlap else 0.3)
    gateway["chat"].side_effect = lambda request: httpx.Response(200, stream=stream)

    result = await make_pipeline(http, overlap=overlap).run_text("hi", [], speak=True)

    assert result.reply == (first + second).strip()
    inputs = [json.loads(c.request.content)["input"] for c in gateway["tts"].calls]
    if overlap:
        assert stream.synth_calls_before_second == 1  # synthesis began before the model finished
        assert inputs == [first.strip(), second]
        assert result.audio_seconds == pytest.approx(2 * TONE_SECONDS, abs=0.05)  # joined, in order
    else:
        assert stream.synth_calls_before_second == 0
        assert inputs == [result.reply]
    assert result.audio is not None and is_ogg_opus(result.audio)
    assert result.audio.count(b"OpusHead") == 1  # one Ogg stream, not chained


async def test_reasoning_is_never_spoken_nor_sent_back(gateway, http):
    gateway["chat"].return_value = stream_response(
        sse(
            "<thi",
            "nk>The user wants SECRET-1.</th",
            "ink>**Paris** is the `capital`.\n# Done",
            reasoning="SECRET-2 chain of thought",
        )
    )
    pipeline = make_pipeline(http)

    result = await pipeline.run_voice(b"voice", [])
    await pipeline.run_text("And of Spain?", to_messages([(result.transcript, result.reply)]))

    assert "SECRET" not in result.reply
    assert result.reply == "**Paris** is the `capital`.\n# Done"
    spoken = " ".join(json.loads(c.request.content)["input"] for c in gateway["tts"].calls)
    assert "SECRET" not in spoken and "think" not in spoken
    assert spoken == "Paris is the capital . Done"
    assert "SECRET" not in gateway["chat"].calls.last.request.content.decode()


async def test_reasoning_revealed_late_by_a_stray_closing_tag_is_not_spoken(gateway, http):
    """Template-opened reasoning: only ``</think>`` reaches the content, after whole sentences of thought."""
    gateway["chat"].return_value = stream_response(
        sse("The user asks SECRET things. I should answer briefly. ", "</think>", "Paris is the capital of France.")
    )
    result = await make_pipeline(http).run_text("hi", [], speak=True)
    assert result.reply == "Paris is the capital of France."
    spoken = [json.loads(c.request.content)["input"] for c in gateway["tts"].calls]
    assert spoken[-1] == "Paris is the capital of France."
    assert result.audio_seconds == pytest.approx(TONE_SECONDS, abs=0.05)  # only the final reply's audio


async def test_what_cannot_be_spoken_never_reaches_speech(gateway, http):
    """Sentences of only emoji, links or markup are skipped (the speech service answers 400 to them)."""
    gateway["chat"].return_value = stream_response(
        sse("**The capital** of France is [Paris](https://paris.fr).\n", "🎉🎉\n", "https://example.com/x\n", "---")
    )
    result = await make_pipeline(http).run_text("hi", [], speak=True)
    assert [json.loads(c.request.content)["input"] for c in gateway["tts"].calls] == ["The capital of France is Paris."]
    assert result.audio_seconds == pytest.approx(TONE_SECONDS, abs=0.05)


@pytest.mark.parametrize("overlap", [True, False])
async def test_code_blocks_between_prose_are_shown_but_not_spoken(gateway, http, overlap):
    reply = (
        "Here is how to add two numbers:\n```python\ndef add(a, b):\n    return a + b\n```\nIt returns the sum of both."
    )
    gateway["chat"].return_value = stream_response(sse(*[reply[i : i + 7] for i in range(0, len(reply), 7)]))
    result = await make_pipeline(http, overlap=overlap).run_voice(b"voice", [])
    assert result.reply == reply and result.audio is not None
    spoken = " ".join(json.loads(c.request.content)["input"] for c in gateway["tts"].calls)
    assert spoken.split() == "Here is how to add two numbers: It returns the sum of both.".split()


@pytest.mark.parametrize("overlap", [True, False])
async def test_a_reply_with_nothing_to_speak_goes_as_text(gateway, http, overlap):
    """A voice question answered only with code, links or emoji: the answer itself, no audio, no apology."""
    code = "```python\nprint(1)\n```"
    gateway["chat"].return_value = stream_response(sse(code))
    result = await make_pipeline(http, overlap=overlap).run_voice(b"voice", [])
    assert result.reply == code and result.audio is None and result.samples is None
    assert result.transcript == "What is the capital of France?"
    assert not gateway["tts"].called


async def test_reply_that_is_only_reasoning_is_an_error_and_not_spoken(gateway, http):
    gateway["chat"].return_value = stream_response(sse("<think>no answer yet", reasoning="hmm"))
    with pytest.raises(VoiceError) as caught:
        await make_pipeline(http).run_voice(b"voice", [])
    assert caught.value.stage == "chat"
    assert not gateway["tts"].called


async def test_history_sent_is_bounded_by_turns(gateway, http):
    history = to_messages([("q1", "a1"), ("q2", "a2")])
    await make_pipeline(http, max_history_turns=1, system_prompt="S").run_text("q3", history)
    assert [m["content"] for m in sent_json(gateway["chat"])["messages"]] == ["S", "q2", "a2", "q3"]

    await make_pipeline(http, max_history_turns=0, system_prompt="S").run_text("q3", history)
    assert [m["content"] for m in sent_json(gateway["chat"])["messages"]] == ["S", "q3"]
    assert history == to_messages([("q1", "a1"), ("q2", "a2")])  # not modified


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
    assert loud.audio is not None and loud.timings.speak is not None


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
    assert "hear" in apology(caught.value)
    assert not gateway["chat"].called


@pytest.mark.parametrize(
    ("route", "failure", "stage"),
    [
        ("stt", httpx.Response(500, json={"error": {"message": "boom"}}), "transcribe"),
        ("stt", httpx.Response(200, json={"unexpected": True}), "transcribe"),
        ("models", httpx.Response(503, text="down"), "chat"),
        ("chat", httpx.ReadTimeout("slow"), "chat"),
        ("chat", httpx.Response(502, text="bad gateway"), "chat"),
        ("chat", stream_response(b'data: {"error": {"message": "engine died"}}\n\n'), "chat"),
        ("chat", stream_response(b"data: not json\n\n"), "chat"),
        ("tts", httpx.ConnectError("refused"), "speak"),
        ("tts", httpx.Response(200, json={"not": "audio"}), "speak"),
    ],
)
async def test_upstream_failures_become_pipeline_errors_with_their_stage(gateway, http, route, failure, stage):
    if isinstance(failure, Exception):
        gateway[route].side_effect = failure
    else:
        gateway[route].return_value = failure
    with pytest.raises(VoiceError) as caught:
        await make_pipeline(http).run_voice(b"voice", [])
    assert caught.value.stage == stage
    assert GATEWAY not in apology(caught.value) and "50" not in apology(caught.value)


async def test_only_calls_safe_to_repeat_are_retried(gateway, http):
    ok_stt = gateway["stt"].return_value
    gateway["stt"].side_effect = [httpx.Response(503, text="warming up"), httpx.ReadTimeout("slow"), ok_stt]
    gateway["tts"].side_effect = [httpx.ConnectError("refused"), httpx.Response(200, content=WAV)]
    result = await make_pipeline(http, retry_attempts=3).run_voice(b"voice", [])
    assert result.reply == "Paris." and gateway["stt"].call_count == 3 and gateway["tts"].call_count == 2

    # The model may have started on a request that failed after connecting: never repeated.
    before = gateway["chat"].call_count
    gateway["chat"].side_effect = [httpx.ReadTimeout("slow"), httpx.Response(503), stream_response(sse("x"))]
    with pytest.raises(VoiceError):
        await make_pipeline(http, chat_model="m", retry_attempts=3).run_text("hi", [])
    with pytest.raises(VoiceError):
        await make_pipeline(http, chat_model="m", retry_attempts=3).run_text("hi", [])
    assert gateway["chat"].call_count - before == 2

    # ...but a connection that was never made is safe to try again.
    gateway["chat"].side_effect = [httpx.ConnectError("refused"), stream_response(sse("Back."))]
    assert (await make_pipeline(http, chat_model="m", retry_attempts=3).run_text("hi", [])).reply == "Back."


async def test_unreachable_gateway_is_a_pipeline_error():
    from tests.conftest import free_port

    async with httpx.AsyncClient(timeout=5) as client:
        pipeline = VoicePipeline(client, base_url=f"http://127.0.0.1:{free_port()}", chat_model="m", retry_attempts=2)
        with pytest.raises(VoiceError) as caught:
            await pipeline.run_text("hello", [])
    assert caught.value.stage == "chat"


@pytest.mark.slow
@pytest.mark.parametrize("engine", TTS_ENGINES)
async def test_voice_exchange_through_the_real_gateway(gateways, engine: str, tmp_path: Path):
    """A bot's voice reply, spoken by each speech engine (a gateway and speech service per engine)."""
    clip = ogg_opus_clip(QUESTION, tmp_path)
    async with httpx.AsyncClient(timeout=300) as client:
        pipeline = VoicePipeline(client, base_url=gateways(engine), max_reply_tokens=48)
        result = await pipeline.run_voice(clip, [])

    assert wer(QUESTION, result.transcript) <= 0.2, result.transcript
    assert result.reply.strip()
    assert "<think>" not in result.reply
    assert result.audio is not None and is_ogg_opus(result.audio) and result.audio_seconds > 0.3
    print(f"real gateway timings: {result.timings}")


def test_pipeline_imports_no_bot_library():
    code = (
        "import sys, core.voice, core.voice_client, core.reply, bots.history, bots.settings, bots.compose, "
        "bots.conversation; print([m for m in sys.modules if m.split('.')[0] in ('aiogram', 'nextcord')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def busy(status: int = 503, retry_after: str | None = "1") -> httpx.Response:
    """What the gateway or speech answers when its queue is full."""
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(
        status, json={"error": {"message": "busy", "type": "server_error", "code": "server_busy"}}, headers=headers
    )


def timed(responses: list[httpx.Response], times: list[float]):
    """A respx side effect answering `responses` in turn and noting when each request came."""
    it = iter(responses)

    def answer(request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        return next(it)

    return answer


async def test_a_busy_upstream_is_waited_for_as_long_as_retry_after_says(gateway, http):
    stt_times: list[float] = []
    ok_stt = gateway["stt"].return_value
    # More refusals than retry_attempts: a busy upstream is bounded by time, not by a count.
    gateway["stt"].side_effect = timed([busy(), busy(), busy(429), ok_stt], stt_times)
    chat_times: list[float] = []
    gateway["chat"].side_effect = timed([busy(429), stream_response(sse("Paris."))], chat_times)

    result = await make_pipeline(http, retry_attempts=3).run_voice(b"voice", [])

    assert result.reply == "Paris." and len(stt_times) == 4 and len(chat_times) == 2
    # Each retry came after the Retry-After (1 s; up to 20 % jitter), not within a fraction of a second.
    gaps = [b - a for a, b in itertools.pairwise(stt_times)] + [chat_times[1] - chat_times[0]]
    assert all(1.0 <= gap < 2.0 for gap in gaps), gaps


async def test_waiting_for_a_busy_upstream_never_blocks_other_messages(gateway, http):
    """A bot serves many chats on one event loop: one message waiting out a Retry-After must not
    stall the others (the retry loop once slept with time.sleep, so 20 users waited in a row)."""
    ok_stt = gateway["stt"].return_value
    gateway["stt"].side_effect = [busy(retry_after="1"), ok_stt]
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.05)

    beat = asyncio.create_task(ticker())
    try:
        await make_pipeline(http).transcribe(b"voice")
    finally:
        beat.cancel()
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) >= 10 and max(gaps) < 0.5, max(gaps)


async def test_a_wait_past_the_deadline_is_told_as_busy_at_once(gateway, http):
    gateway["stt"].return_value = busy(retry_after="60")
    start = time.monotonic()
    with patience(5.0), pytest.raises(VoiceError) as caught:
        await make_pipeline(http).run_voice(b"voice", [])
    assert apology(caught.value) == BUSY and caught.value.stage == "transcribe"
    assert gateway["stt"].call_count == 1 and time.monotonic() - start < 5.0  # not waiting out the deadline

    # Without Retry-After, a 503 keeps the bounded exponential retries, and ends as "busy" too.
    gateway["stt"].return_value = busy(retry_after=None)
    with pytest.raises(VoiceError) as caught:
        await make_pipeline(http, retry_attempts=2).run_voice(b"voice", [])
    assert apology(caught.value) == BUSY and gateway["stt"].call_count == 3


async def test_a_long_wait_is_announced_once(gateway, http):
    ok_stt = gateway["stt"].return_value
    gateway["stt"].side_effect = [busy(), busy(), busy(), ok_stt]
    notices: list[float] = []
    with patience(30.0, on_busy=lambda: notices.append(time.monotonic()), notice_after=1.5):
        result = await make_pipeline(http).run_voice(b"voice", [])
    assert result.reply == "Paris." and len(notices) == 1


@pytest.mark.parametrize(
    ("answer", "told"),
    [
        (
            httpx.Response(
                415, json={"error": {"message": "Could not decode audio", "param": "file", "code": "invalid_audio"}}
            ),
            UNDECODABLE,
        ),
        (
            httpx.Response(
                400, json={"error": {"message": "Audio file is empty.", "param": "file", "code": "empty_file"}}
            ),
            UNDECODABLE,
        ),
        (
            httpx.Response(
                400,
                json={"error": {"message": "Audio is longer than 1500 s.", "param": "file", "code": "audio_too_long"}},
            ),
            AUDIO_TOO_BIG,
        ),
        (httpx.Response(413, json={"error": {"message": "too big", "code": "request_too_large"}}), AUDIO_TOO_BIG),
    ],
)
async def test_audio_speech_refuses_is_told_as_such_not_as_try_again(gateway, http, answer, told):
    gateway["stt"].return_value = answer
    with pytest.raises(VoiceError) as caught:
        await make_pipeline(http).run_voice(b"\x00garbage", [])
    assert apology(caught.value) == told and "try again in a moment" not in told
    assert gateway["stt"].call_count == 1  # the same file would fail the same way


async def test_speech_refuses_garbage_and_empty_files_as_undecodable(speech_url: str):
    """The real speech service's answer to what is not audio: told as undecodable, not "try again"."""
    async with httpx.AsyncClient(timeout=60) as client:
        pipeline = VoicePipeline(client, base_url=speech_url, chat_model="m")
        for data in (b"", b"this is not audio at all" * 20):
            with pytest.raises(VoiceError) as caught:
                await pipeline.run_voice(data, [])
            assert apology(caught.value) == UNDECODABLE, caught.value


# --- how the SDK's errors reach the user ------------------------------------------------------
# The pipeline talks through the openai SDK: its RateLimitError / InternalServerError (with the
# response's Retry-After), APIConnectionError, APITimeoutError and BadRequestError must keep the
# replies users saw when the pipeline spoke HTTP itself.

CHAT_SORRY = "Sorry, I couldn't come up with an answer right now. Please try again in a moment."
SPEAK_SORRY = "Sorry, I couldn't speak my answer right now. Please try again in a moment."
HEAR_SORRY = "Sorry, I couldn't understand that voice message right now. Please try again in a moment."


@pytest.mark.parametrize(
    ("route", "answers", "told", "calls", "detail"),
    [
        # 429 asking for longer than the caller's patience: "busy" at once, not after the deadline.
        ("chat", [busy(429, retry_after="60")], BUSY, 1, "answered 429"),
        ("stt", [busy(429, retry_after="60")], BUSY, 1, "answered 429"),
        # 503 saying when to come back: waited for, then answered (chat too: refused before any work).
        ("chat", [busy(503, retry_after="0"), stream_response(sse("Paris."))], None, 2, None),
        # 503 without Retry-After: the chat may have reached the model, so it is not repeated.
        ("chat", [busy(503, retry_after=None), stream_response(sse("x"))], BUSY, 1, "answered 503"),
        # Refused connections: safe to repeat anything, up to retry_attempts, then the stage's apology.
        ("chat", [httpx.ConnectError("refused")] * 3, CHAT_SORRY, 3, "ConnectError"),
        ("tts", [httpx.ConnectError("refused")] * 3, SPEAK_SORRY, 3, "ConnectError"),
        # A read timeout on the chat: the model may be working on it, never repeated.
        ("chat", [httpx.ReadTimeout("slow"), stream_response(sse("x"))], CHAT_SORRY, 1, "timed out (ReadTimeout)"),
        ("stt", [httpx.ReadTimeout("slow")] * 3, HEAR_SORRY, 3, "timed out (ReadTimeout)"),
        # BadRequest: the same request would fail again; the apology, not "busy", no retry.
        (
            "chat",
            [httpx.Response(400, json={"error": {"message": "too many tokens", "code": "context_length_exceeded"}})],
            CHAT_SORRY,
            1,
            "answered 400",
        ),
        (
            "stt",
            [httpx.Response(400, json={"error": {"message": "Audio file is empty.", "param": "file"}})],
            UNDECODABLE,
            1,
            "answered 400",
        ),
    ],
)
async def test_sdk_errors_reach_the_user_as_before(gateway, http, route, answers, told, calls, detail):
    gateway[route].side_effect = answers
    pipeline = make_pipeline(http, chat_model="m", retry_attempts=3)
    with patience(5.0):
        if told is None:
            assert (await pipeline.run_voice(b"voice", [])).reply == "Paris."
        else:
            with pytest.raises(VoiceError) as caught:
                await pipeline.run_voice(b"voice", [])
            assert apology(caught.value) == told
            assert detail in caught.value.detail
            # The status and Retry-After come as data, not only inside the text.
            status = int(detail.split()[1]) if detail.startswith("answered ") else None
            assert caught.value.status == status
            wait = answers[0].headers.get("retry-after") if isinstance(answers[0], httpx.Response) else None
            assert caught.value.retry_after == (float(wait) if wait else None)
            assert caught.value.stage == {"stt": "transcribe", "chat": "chat", "tts": "speak"}[route]
    assert gateway[route].call_count == calls


async def test_connection_refused_by_a_real_port_is_the_stages_apology():
    from tests.conftest import free_port

    async with httpx.AsyncClient(timeout=5) as client:
        pipeline = VoicePipeline(client, base_url=f"http://127.0.0.1:{free_port()}", chat_model="m", retry_attempts=2)
        for call, stage, sorry in [
            (pipeline.transcribe(b"voice"), "transcribe", HEAR_SORRY),
            (pipeline.chat("hi", []), "chat", CHAT_SORRY),
            (pipeline.speak("Hello there."), "speak", SPEAK_SORRY),
        ]:
            with pytest.raises(VoiceError) as caught:
                await call
            assert (caught.value.stage, apology(caught.value)) == (stage, sorry)
            assert "ConnectError" in caught.value.detail


async def test_a_server_that_never_answers_times_out_once_for_the_chat():
    """A real socket that accepts and stays silent: the client's timeout ends the chat, unrepeated."""
    connections: list[asyncio.StreamReader] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(reader)
        await reader.read(1 << 16)
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(timeout=0.5) as client:
            pipeline = VoicePipeline(client, base_url=f"http://127.0.0.1:{port}", chat_model="m", retry_attempts=3)
            with pytest.raises(VoiceError) as caught:
                await pipeline.chat("hi", [])
            assert caught.value.stage == "chat" and apology(caught.value) == CHAT_SORRY
            assert "timed out (ReadTimeout)" in caught.value.detail
            assert len(connections) == 1
            # Transcription is safe to repeat: every try times out, then the apology.
            with pytest.raises(VoiceError) as caught:
                await pipeline.transcribe(b"voice")
            assert apology(caught.value) == HEAR_SORRY and len(connections) == 4
    finally:
        server.close()


async def test_stream_speech_yields_the_services_bytes_and_maps_busy(gateway, http):
    """The realtime session's speech path: pcm streamed as it comes; a 503 told as busy, not repeated mid-reply."""
    pcm = bytes(range(256)) * 40
    gateway["tts"].side_effect = [
        httpx.Response(200, content=pcm, headers={"content-type": "audio/pcm"}),
        busy(503, retry_after=None),
    ]
    client = VoiceClient(http, base_url=GATEWAY)
    assert b"".join([chunk async for chunk in client.stream_speech("Hello there.", voice="af_heart")]) == pcm
    assert sent_json(gateway["tts"]) == {
        "model": "tts-1",
        "input": "Hello there.",
        "voice": "af_heart",
        "response_format": "pcm",
    }
    with pytest.raises(VoiceError) as caught:
        [chunk async for chunk in client.stream_speech("Hello again.")]
    assert caught.value.stage == "speak" and apology(caught.value) == BUSY and gateway["tts"].call_count == 2


async def test_stream_transcription_yields_deltas_then_the_transcript(gateway, http):
    """The realtime session's transcription path: OpenAI's transcript.text events as they come; a
    stream that breaks off or never says done is a transcribe-stage VoiceError; a 503 is retried."""
    events = [
        {"type": "transcript.text.delta", "delta": "What is"},
        {"type": "transcript.text.delta", "delta": " the time?"},
        {"type": "transcript.text.done", "text": " What is the time? "},
    ]
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events).encode()
    headers = {"content-type": "text/event-stream"}
    gateway["stt"].side_effect = [
        busy(503, retry_after=None),
        httpx.Response(200, content=body, headers=headers),
        httpx.Response(200, content=body[: body.rindex(b"data:")], headers=headers),
    ]
    client = VoiceClient(http, base_url=GATEWAY)
    pieces = [p async for p in client.stream_transcription(b"voice", filename="turn.wav", prompt="time")]
    assert pieces == ["What is", " the time?", Transcript("What is the time?")]
    sent = gateway["stt"].calls[-1].request.content
    assert b'name="stream"\r\n\r\ntrue' in sent and b'name="prompt"\r\n\r\ntime' in sent
    with pytest.raises(VoiceError) as caught:
        [p async for p in client.stream_transcription(b"voice")]
    assert caught.value.stage == "transcribe" and "without transcript.text.done" in str(caught.value)


async def test_sdk_requests_go_through_the_callers_instrumented_client(gateway):
    """The SDK sends through the bot's own httpx client: its OpenTelemetry spans and traceparent stay."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from core.observability import setup

    exporter = InMemorySpanExporter()
    telemetry = setup("pipeline-test", exporter=exporter)
    async with httpx.AsyncClient(timeout=5) as client:
        telemetry.instrument(client)
        with telemetry.tracer("test").start_as_current_span("message") as root:
            await make_pipeline(client).run_voice(b"voice", [])
    trace_id = f"{root.get_span_context().trace_id:032x}"
    for name in ("models", "stt", "chat", "tts"):
        assert gateway[name].calls.last.request.headers["traceparent"].split("-")[1] == trace_id
    assert len([s for s in exporter.get_finished_spans() if s.name != "message"]) == 4
