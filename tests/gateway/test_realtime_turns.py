"""/v1/realtime turns against the stub upstream (fast, deterministic): the event sequence of a reply,
a spoken turn cut by the real Silero VAD, the bounded conversation, and the VAD on its own."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import connect

from benchmarks.perf.realtime import clip_pcm, stream_pcm
from gateway.app import create_app
from gateway.realtime_events import VadOptions
from gateway.realtime_input import MIN_PAUSE_MS, _pause_ms
from gateway.realtime_shared import INITIAL_TRANSCRIPTION_S
from gateway.settings import RealtimeSettings
from gateway.vad import SileroVAD, TurnDetector
from tests.clips import espeak_wav
from tests.gateway.conftest import gateway_settings, serve_in_thread
from tests.gateway.stub_upstream import AUDIO_GAP, StubUpstream

QUESTION = "What is the capital of Germany?"


@pytest.fixture(scope="module")
def short_memory_gw(stub_url: str) -> Iterator[str]:
    """A gateway over the stub whose realtime sessions remember two turns."""
    with serve_in_thread(
        create_app(gateway_settings(stub_url, realtime=RealtimeSettings(max_turns=2), read_timeout=10))
    ) as url:
        yield url


@pytest.fixture(scope="module")
def question(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return clip_pcm(espeak_wav(QUESTION, tmp_path_factory.mktemp("clip") / "q.wav"))


async def _until(ws: Any, kind: str, log: list[dict[str, Any]], timeout: float = 20) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            log.append(message)
            assert message["type"] != "error", message
            if message["type"] == kind:
                return message


async def _typed_turn(ws: Any, text: str, log: list[dict[str, Any]]) -> dict[str, Any]:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
    await ws.send(json.dumps({"type": "response.create"}))
    return await _until(ws, "response.done", log)


def test_typed_turn_streams_the_reply_in_openais_event_order(short_memory_gw: str) -> None:
    async def run() -> list[dict[str, Any]]:
        log: list[dict[str, Any]] = []
        async with connect(short_memory_gw.replace("http", "ws") + "/v1/realtime") as ws:
            await _typed_turn(ws, "Say hello.", log)
        return log

    log = anyio.run(run)
    types = [m["type"] for m in log]
    order = [
        "session.created",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_audio_transcript.delta",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
    ]
    positions = [types.index(t) for t in order]
    assert positions == sorted(positions), types
    done = log[-1]["response"]
    assert done["status"] == "completed"
    assert done["output"][0]["content"][0] == {"type": "output_audio", "transcript": "Hello ✓"}
    assert done["usage"]["output_tokens"] > 0 and done["usage"]["total_tokens"] >= done["usage"]["output_tokens"]
    audio = b"".join(base64.b64decode(m["delta"]) for m in log if m["type"] == "response.output_audio.delta")
    assert audio and len(audio) % 2 == 0  # whole pcm16 samples
    deltas = [m for m in log if m["type"] == "response.output_audio.delta"]
    assert all(len(base64.b64decode(m["delta"])) <= 4800 for m in deltas)  # ≤ 100 ms each


@pytest.mark.parametrize("turns", [True, False], ids=["llm-pauses-for-tts", "one-stream"])
def test_the_llm_and_tts_take_turns(stub_url: str, stub: StubUpstream, turns: bool) -> None:
    """Each piece's LLM stream is closed (vLLM stops), the piece is spoken with every core, and the
    LLM goes on from the text so far once that piece's audio is all out."""
    stub.script = ["The sky is blue", " because air", " scatters blue light.", " Sunsets are red."]

    async def run(url: str) -> list[dict[str, Any]]:
        log: list[dict[str, Any]] = []
        async with connect(url.replace("http", "ws") + "/v1/realtime") as ws:
            await _typed_turn(ws, "Why is the sky blue?", log)
        return log

    with serve_in_thread(
        create_app(gateway_settings(stub_url, realtime=RealtimeSettings(llm_pauses_for_tts=turns), read_timeout=10))
    ) as url:
        log = anyio.run(run, url)
    assert log[-1]["response"]["output"][0]["content"][0]["transcript"] == "".join(stub.script)
    deltas = [m["delta"] for m in log if m["type"] == "response.output_audio_transcript.delta"]
    assert deltas == ["The sky is blue", " because air scatters blue light.", " Sunsets are red."]
    calls = [s for s in stub.seen if s.path in ("/v1/chat/completions", "/v1/audio/speech")]
    chats = [json.loads(s.body) for s in calls if s.path == "/v1/chat/completions"]
    speech = [json.loads(s.body) for s in calls if s.path == "/v1/audio/speech"]
    if not turns:
        assert len(chats) == 1 and stub.stream_finished.is_set() and not stub.stream_cut.is_set()
        assert all("service_tier" not in body for body in speech)
        return
    assert stub.stream_cut.is_set()  # a stream was closed after "The sky is blue"
    assert [s.path.rsplit("/", 1)[1] for s in calls] == ["completions", "speech"] * 3
    assert [body["input"] for body in speech] == [
        "The sky is blue",
        "because air scatters blue light.",
        "Sunsets are red.",
    ]
    assert all(body["service_tier"] == "priority" for body in speech)  # TTS has every core while the LLM waits
    for spoken, resumed in zip(
        calls[1::2], calls[2::2], strict=False
    ):  # the last TTS call is followed by none; after the whole of the piece's audio (2 gaps)
        assert resumed.at - spoken.at >= 2 * AUDIO_GAP
    first, *continued = chats
    assert [body["messages"][-1] for body in continued] == [
        {"role": "assistant", "content": "The sky is blue because air"},
        {"role": "assistant", "content": "The sky is blue because air scatters blue light. Sunsets are red."},
    ]
    for body in continued:
        assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
        assert body["messages"][:-1] == first["messages"] and 0 < body["max_tokens"] < first["max_tokens"]


def test_conversation_is_bounded(short_memory_gw: str, stub: StubUpstream) -> None:
    async def run() -> None:
        async with connect(short_memory_gw.replace("http", "ws") + "/v1/realtime") as ws:
            for n in range(4):
                assert (await _typed_turn(ws, f"Question number {n}.", []))["response"]["status"] == "completed"

    anyio.run(run)
    chats = [json.loads(s.body) for s in stub.seen if s.path == "/v1/chat/completions"]
    assert len(chats) == 4
    last = chats[-1]["messages"]
    assert last[0]["role"] == "system"
    assert last[-1] == {"role": "user", "content": "Question number 3."}
    assert len(last) <= 1 + 2 * 2  # system + two turns, the current question included
    assert all("number 0" not in m["content"] for m in last)
    assert [m["role"] for m in last[1:]] == ["user", "assistant", "user"]  # whole turns, oldest first
    assert last[2]["content"] == "Hello ✓"


def test_spoken_turn_is_cut_by_server_vad_and_answered(gw: str, stub: StubUpstream, question: bytes) -> None:
    async def run() -> list[dict[str, Any]]:
        log: list[dict[str, Any]] = []
        async with connect(gw.replace("http", "ws") + "/v1/realtime") as ws:
            # No session.update first: audio is taken with the defaults (server VAD on), as OpenAI does.
            await stream_pcm(
                question, lambda b64: ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": b64})), pace=0
            )
            await _until(ws, "response.done", log)
        return log

    log = anyio.run(run)
    types = [m["type"] for m in log]
    for kind in (
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.done",
    ):
        assert kind in types, types
    started = next(m for m in log if m["type"] == "input_audio_buffer.speech_started")
    stopped = next(m for m in log if m["type"] == "input_audio_buffer.speech_stopped")
    assert 0 <= started["audio_start_ms"] <= 300  # the clip starts after 0.3 s of silence, minus prefix padding
    clip_ms = len(question) // 48
    assert clip_ms - 1000 < stopped["audio_end_ms"] <= clip_ms  # speech ends 1 s before the clip does
    assert (
        started["item_id"]
        == stopped["item_id"]
        == next(m for m in log if m["type"] == "input_audio_buffer.committed")["item_id"]
    )
    # The committed turn reached transcription as a WAV of the speech (with the prefix padding): the
    # stub answers with its size.
    upload = next(s for s in stub.seen if s.path == "/v1/audio/transcriptions")
    assert b"RIFF" in upload.body and b"WAVE" in upload.body
    assert log[-1]["response"]["status"] == "completed"
    # The transcript streams as deltas of the committed item (the stub sends two), then completes.
    item_id = next(m for m in log if m["type"] == "input_audio_buffer.committed")["item_id"]
    deltas = [m for m in log if m["type"] == "conversation.item.input_audio_transcription.delta"]
    completed = types.index("conversation.item.input_audio_transcription.completed")
    assert len(deltas) == 2 and all(m["item_id"] == item_id and m["content_index"] == 0 for m in deltas)
    assert types.index("input_audio_buffer.committed") < types.index(deltas[0]["type"]) < completed
    assert "".join(m["delta"] for m in deltas) == log[completed]["transcript"]


@pytest.fixture(scope="module")
def vad() -> SileroVAD:
    return SileroVAD()


def _chunks(pcm: bytes, detector: TurnDetector, size: int = 1920) -> list[tuple[str, int]]:
    return [e for i in range(0, len(pcm), size) for e in detector.feed(pcm[i : i + size])]


def test_vad_finds_one_turn_in_a_clip(vad: SileroVAD, question: bytes) -> None:
    events = _chunks(question, TurnDetector(vad, VadOptions()))
    assert [kind for kind, _ in events] == ["start", "stop"]
    (_, start), (_, stop) = events
    assert start <= 300 and stop > start + 1000


def test_vad_ignores_silence_and_respects_its_options(vad: SileroVAD, question: bytes) -> None:
    assert _chunks(bytes(48000 * 3), TurnDetector(vad, VadOptions())) == []
    assert _chunks(question, TurnDetector(vad, VadOptions(threshold=1.0))) == []  # nothing is that sure
    short, long = (TurnDetector(vad, VadOptions(silence_duration_ms=ms)) for ms in (200, 900))
    stop_short = [ms for kind, ms in _chunks(question, short) if kind == "stop"]
    stop_long = [ms for kind, ms in _chunks(question, long) if kind == "stop"]
    assert stop_long == [] or stop_long[-1] > stop_short[-1]


def test_vad_model_ships_with_faster_whisper() -> None:
    from gateway.vad import silero_model_path

    path = silero_model_path()
    assert isinstance(path, Path) and path.name == "silero_vad_v6.onnx" and path.stat().st_size > 100_000


def _two_parts(question: bytes) -> bytes:
    """The question, 500 ms of silence (with the clip's own quiet ends: more than 450 ms, less than
    900 ms), the question again."""
    return question[: -1000 * 48] + bytes(500 * 48) + question[300 * 48 :]  # pcm16 at 24 kHz: 48 bytes a ms


def test_vad_reports_a_pause_before_the_stop_and_a_resume_when_speech_goes_on(vad: SileroVAD, question: bytes) -> None:
    events = _chunks(question, TurnDetector(vad, VadOptions(silence_duration_ms=500), pause_ms=250))
    assert [kind for kind, _ in events] == ["start", "pause", "stop"]
    assert 200 <= events[2][1] - events[1][1] <= 300  # the pause comes 250 ms of silence before the stop
    # Speech, a short silence (a pause, not an end), speech again: one turn.
    kinds = [
        kind
        for kind, _ in _chunks(
            _two_parts(question), TurnDetector(vad, VadOptions(silence_duration_ms=900), pause_ms=450)
        )
    ]
    assert kinds[:2] == ["start", "pause"] and "resume" in kinds and kinds.count("stop") == 1 and kinds[-1] == "stop"
    assert kinds.index("resume") < kinds.index("stop")


def _spoken_turn(gw: str, pcm: bytes, silence_ms: int = 500) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Stream `pcm` at real-time pace into a fresh session; the events and when (monotonic) each
    kind first arrived."""

    async def run() -> tuple[list[dict[str, Any]], dict[str, float]]:
        log: list[dict[str, Any]] = []
        arrived: dict[str, float] = {}

        async def read() -> None:
            async for raw in ws:
                message = json.loads(raw)
                log.append(message)
                arrived.setdefault(message["type"], time.monotonic())
                if message["type"] == "conversation.item.input_audio_transcription.completed":
                    return

        async with connect(gw.replace("http", "ws") + "/v1/realtime") as ws:
            vad = {"type": "server_vad", "silence_duration_ms": silence_ms}
            await ws.send(
                json.dumps({"type": "session.update", "session": {"audio": {"input": {"turn_detection": vad}}}})
            )
            reader = asyncio.create_task(read())
            await stream_pcm(
                pcm, lambda b64: ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": b64})), pace=1.0
            )
            async with asyncio.timeout(20):
                await reader
        return log, arrived

    return anyio.run(run)


def test_a_turn_is_transcribed_while_vad_waits_to_be_sure_it_ended(
    gw: str, stub: StubUpstream, question: bytes
) -> None:
    stub.reset()
    log, arrived = _spoken_turn(gw, question)
    uploads = [s for s in stub.seen if s.path == "/v1/audio/transcriptions"]
    assert len(uploads) == 1  # the transcription started at the pause is the turn's
    assert uploads[0].at < arrived["input_audio_buffer.speech_stopped"]  # and it started before the turn ended
    done = next(m for m in log if m["type"] == "conversation.item.input_audio_transcription.completed")
    assert done["transcript"] == f"{len(uploads[0].body)} bytes"


def test_words_after_a_pause_are_not_lost(gw: str, stub: StubUpstream, question: bytes) -> None:
    stub.reset()
    log, _ = _spoken_turn(gw, _two_parts(question), silence_ms=900)
    uploads = [s for s in stub.seen if s.path == "/v1/audio/transcriptions"]
    done = next(m for m in log if m["type"] == "conversation.item.input_audio_transcription.completed")
    # The transcript is of the whole turn (the longest upload), not of what came before the pause.
    assert done["transcript"] == f"{max(len(u.body) for u in uploads)} bytes"
    assert [m["type"] for m in log].count("input_audio_buffer.committed") == 1


def test_a_realtime_response_is_one_trace_through_the_gateways_own_routes(stub_url: str) -> None:
    """The loopback client is traced: the response's span is the parent of its chat and speech calls,
    and the gateway's server spans for them continue the same trace."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from core.observability import setup

    exporter = InMemorySpanExporter()
    app = create_app(gateway_settings(stub_url, read_timeout=10), telemetry=setup("gateway", exporter=exporter))

    async def run(url: str) -> None:
        async with connect(url.replace("http://", "ws://") + "/v1/realtime?model=june") as ws:
            await _typed_turn(ws, QUESTION, [])

    with serve_in_thread(app) as url:
        anyio.run(run, url)
        deadline = time.monotonic() + 10
        while (
            not [s for s in exporter.get_finished_spans() if s.name == "realtime.response"]
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
    spans = exporter.get_finished_spans()
    (response,) = [s for s in spans if s.name == "realtime.response"]
    trace = [s for s in spans if s.context.trace_id == response.context.trace_id]
    clients = {
        s.name for s in trace if s.kind == SpanKind.CLIENT and s.parent and s.parent.span_id == response.context.span_id
    }
    servers = {s.attributes.get("http.route") for s in trace if s.kind == SpanKind.SERVER}
    assert {"/v1/chat/completions", "/v1/audio/speech"} <= servers, (clients, servers)
    assert any("POST" in name for name in clients), clients


@pytest.mark.parametrize(
    ("silence_ms", "transcription_s", "pause_ms"),
    [(500, 0.1, 250), (500, 0.2, 250), (500, 0.3, 150), (500, 0.9, MIN_PAUSE_MS), (1000, 0.3, 500), (200, 0.1, None)],
)
def test_the_early_transcription_starts_as_long_before_the_end_as_transcriptions_take(
    silence_ms: int, transcription_s: float, pause_ms: int | None
) -> None:
    """Done when VAD is sure the turn ended (50 ms ahead), never after half the silence, never before
    MIN_PAUSE_MS of it (gaps between words), and not at all with under 100 ms to win."""
    assert _pause_ms(silence_ms, transcription_s) == pause_ms


def test_the_gateway_times_live_transcriptions_and_starts_the_next_turns_sooner(
    stub_url: str, stub: StubUpstream
) -> None:
    """A slow box: each transcription takes ~0.6 s (the stub), so the moving average of live
    transcriptions rises from its start and the next turn's early transcription starts at the
    shortest pause."""
    stub.transcription_s = 0.6
    app = create_app(gateway_settings(stub_url, read_timeout=10.0))

    async def run(url: str) -> None:
        async with connect(url.replace("http", "ws") + "/v1/realtime?intent=transcription") as ws:
            await ws.send(json.dumps({"type": "session.update", "session": {"type": "transcription",
                "audio": {"input": {"turn_detection": None}}}}))  # fmt: skip
            for _ in range(3):
                audio = base64.b64encode(bytes(48_000)).decode()  # 1 s of pcm16 at 24 kHz
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
                await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
                await _until(ws, "conversation.item.input_audio_transcription.completed", [])

    with serve_in_thread(app) as url:
        realtime = app.state.realtime
        assert realtime.transcription_s == INITIAL_TRANSCRIPTION_S
        asyncio.run(run(url))
    # 0.3 → 0.39 → 0.45 → 0.50 with three 0.6 s transcriptions (a little more with the loopback's own time)
    assert 0.45 < realtime.transcription_s < 0.6
    assert _pause_ms(500, realtime.transcription_s) == MIN_PAUSE_MS
