"""Transcription sessions of /v1/realtime (live captions) through the official `openai` SDK, against the
real speech service (faster-whisper) behind a gateway (the LLM is the stub: a transcription session
must never reach it): spoken clips in, transcript deltas and completed transcripts out, never a
response; malformed session fields are `error` events and the session goes on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from openai import AsyncOpenAI
from websockets.asyncio.client import connect

from benchmarks.perf.realtime import clip_pcm, stream_pcm
from gateway.app import create_app
from tests.clips import espeak_wav, normalize, wer
from tests.gateway.conftest import gateway_settings, serve_in_thread
from tests.gateway.stub_upstream import StubUpstream

SENTENCES = ("Please turn on the kitchen lights before dinner.", "What is the capital of Germany?")
SERVER_VAD = {"type": "server_vad", "silence_duration_ms": 500}
TIMEOUT = 120  # s: the shared 2-core machine is slow when busy


@pytest.fixture(scope="module")
def speech_gw(stub_url: str, speech_url: str) -> Iterator[str]:
    """A gateway whose speech is the real service and whose LLM is the stub."""
    with serve_in_thread(create_app(gateway_settings(stub_url, speech_url=speech_url, read_timeout=60))) as url:
        yield url


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    d = tmp_path_factory.mktemp("clips")
    return [clip_pcm(espeak_wav(text, d / f"{i}.wav")) for i, text in enumerate(SENTENCES)]


def _session(turn_detection: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "type": "transcription",
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                            "transcription": {"model": "whisper-1", "language": "en"},
                            "turn_detection": turn_detection, "noise_reduction": None}},
    }  # fmt: skip


async def _collect(conn: Any, log: list[Any], until: str, count: int = 1) -> list[Any]:
    """Events into `log` until `count` of type `until` have come; returns those."""
    found: list[Any] = []
    async with asyncio.timeout(TIMEOUT):
        async for ev in conn:
            log.append(ev)
            if ev.type == until:
                found.append(ev)
                if len(found) == count:
                    return found
    raise AssertionError(f"connection closed before {count} {until}")


def _check_captions(log: list[Any], completed: list[Any]) -> None:
    """Each completed transcript matches its clip, its deltas add up to it, and nothing was answered."""
    assert not [ev.type for ev in log if ev.type.startswith("response.")]
    for text, done in zip(SENTENCES, completed, strict=True):
        assert wer(text, done.transcript) <= 0.2, done.transcript
        deltas = [ev.delta for ev in log if ev.type.endswith("transcription.delta") and ev.item_id == done.item_id]
        assert deltas, "no delta before the completed transcript"
        assert normalize("".join(deltas)) == normalize(done.transcript)
        assert done.usage.type == "duration" and done.usage.seconds > 1


def test_server_vad_captions_through_the_sdk(speech_gw: str, stub: StubUpstream, clips: list[bytes]) -> None:
    async def run() -> tuple[list[Any], list[Any]]:
        client = AsyncOpenAI(base_url=f"{speech_gw}/v1", api_key="unused")
        log: list[Any] = []
        async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
            await conn.session.update(session=_session(SERVER_VAD))  # type: ignore[arg-type]
            await _collect(conn, log, "session.updated")
            for pcm in clips:  # two turns, cut by server VAD
                await stream_pcm(pcm, lambda b64: conn.input_audio_buffer.append(audio=b64), pace=0)
            completed = await _collect(conn, log, "conversation.item.input_audio_transcription.completed", 2)
            await conn.response.create()  # a transcription session never responds
            (error,) = await _collect(conn, log, "error")
            assert error.error.code == "unsupported_in_transcription_session"
            await conn.input_audio_buffer.clear()  # and it goes on
            await _collect(conn, log, "input_audio_buffer.cleared")
        return log, completed

    log, completed = anyio.run(run)
    created = log[0]
    assert created.type == "session.created" and created.session.type == "transcription"
    updated = next(ev for ev in log if ev.type == "session.updated").session
    assert updated.type == "transcription" and updated.audio.input.turn_detection.type == "server_vad"
    types = [ev.type for ev in log]
    assert types.count("input_audio_buffer.speech_started") == types.count("input_audio_buffer.committed") == 2
    _check_captions(log, completed)
    assert not [s for s in stub.seen if s.path == "/v1/chat/completions"]  # the LLM was never asked


def test_manual_commits_after_switching_to_transcription(speech_gw: str, clips: list[bytes]) -> None:
    """A session opened without intent becomes a transcription session by session.update (nothing
    happened in it yet); without turn detection the client commits each turn."""

    async def run() -> tuple[list[Any], list[Any]]:
        client = AsyncOpenAI(base_url=f"{speech_gw}/v1", api_key="unused")
        log: list[Any] = []
        async with client.realtime.connect(model="june") as conn:
            await conn.session.update(session=_session(None))  # type: ignore[arg-type]
            (updated,) = await _collect(conn, log, "session.updated")
            assert updated.session.type == "transcription" and updated.session.audio.input.turn_detection is None
            completed: list[Any] = []
            for pcm in clips:
                await stream_pcm(pcm, lambda b64: conn.input_audio_buffer.append(audio=b64), pace=0)
                await conn.input_audio_buffer.commit()
                completed += await _collect(conn, log, "conversation.item.input_audio_transcription.completed")
            return log, completed

    log, completed = anyio.run(run)
    assert not [ev for ev in log if ev.type.startswith("input_audio_buffer.speech_")]  # no VAD
    _check_captions(log, completed)


BAD_UPDATES = [
    ({"type": "transcription", "instructions": "Be brief."}, "unknown_parameter", "session.instructions"),
    ({"type": "transcription", "audio": {"output": {"voice": "ash"}}}, "unknown_parameter", "session.audio.output"),
    ({"type": "transcription", "audio": {"input": {"noise_reduction": {"type": "near_field"}}}},
     "unsupported_value", "session.audio.input.noise_reduction"),
    ({"type": "transcription", "include": ["item.input_audio_transcription.logprobs"]}, "unsupported_value",
     "session.include"),
    ({"type": "transcription", "audio": {"input": {"transcription": {"model": "whisper-1", "delay": "low"}}}},
     "unknown_parameter", "session.audio.input.transcription.delay"),
    ({"type": "transcription", "audio": {"input": {"transcription": "whisper-1"}}}, "invalid_value",
     "session.audio.input.transcription"),
    ({"type": "transcription", "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 7}}}},
     "invalid_value", "session.audio.input.turn_detection.threshold"),
    ({"type": "captions"}, "invalid_value", "session.type"),
    ({"type": "realtime"}, "invalid_value", "session.type"),  # the session has begun: no switching
]  # fmt: skip


def test_malformed_transcription_updates_are_errors_and_the_session_goes_on(speech_gw: str) -> None:
    async def run() -> list[dict[str, Any]]:
        answers = []
        url = speech_gw.replace("http", "ws") + "/v1/realtime?intent=transcription"
        async with connect(url) as ws:
            assert json.loads(await ws.recv())["session"]["type"] == "transcription"
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": "AAAA" * 2000}))  # begun
            for session, _, _ in BAD_UPDATES:
                await ws.send(json.dumps({"type": "session.update", "event_id": "evt_bad", "session": session}))
                answers.append(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))
            await ws.send(json.dumps({"type": "session.update", "session": _session(None)}))
            answers.append(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))
        return answers

    *errors, good = anyio.run(run)
    for (_, code, param), answer in zip(BAD_UPDATES, errors, strict=True):
        assert answer["type"] == "error", answer
        assert (answer["error"]["code"], answer["error"]["param"]) == (code, param), answer
        assert answer["error"]["event_id"] == "evt_bad"
    assert good["type"] == "session.updated" and good["session"]["type"] == "transcription"


def test_unknown_intent_is_refused(speech_gw: str) -> None:
    async def run() -> dict[str, Any]:
        async with connect(speech_gw.replace("http", "ws") + "/v1/realtime?intent=captions") as ws:
            return json.loads(await ws.recv())

    answer = anyio.run(run)
    assert answer["type"] == "error" and answer["error"]["param"] == "intent"
