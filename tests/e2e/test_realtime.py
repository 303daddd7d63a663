"""Talking to june live: the official `openai` SDK's realtime client against the real stack
(speech service, vLLM on CPU, the gateway started from this tree), spoken clips streamed at real-time pace."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import anyio
import httpx
import pytest
from openai import AsyncOpenAI

from benchmarks.perf.realtime import clip_pcm, pcm_wav, stream_pcm
from tests.clips import espeak_wav, wer
from tests.conftest import TTS_ENGINES

pytestmark = pytest.mark.slow  # the whole stack: vLLM through `gateway_url`

QUESTION = "What is the capital of Germany?"
INTERRUPTION = "Please turn on the kitchen lights before dinner."  # Whisper base hears this espeak clip exactly
SESSION = {
    "type": "realtime",
    "instructions": "You are June, a voice assistant. Answer in two or three short plain sentences.",
    "audio": {"input": {"transcription": {"model": "whisper-1", "language": "en"},
                        "turn_detection": {"type": "server_vad", "silence_duration_ms": 400}}},
}  # fmt: skip
TIMEOUT = 240  # s per reply: the shared 2-core machine runs many things at once


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("clips")
    return {text: clip_pcm(espeak_wav(text, d / f"{i}.wav")) for i, text in enumerate((QUESTION, INTERRUPTION))}


async def _events_until(conn: Any, done: str, log: list[Any], timeout: float = TIMEOUT) -> Any:
    """Receive events into `log` until one of type `done`; returns it."""
    async with asyncio.timeout(timeout):
        async for ev in conn:
            log.append(ev)
            if ev.type == "error":
                raise AssertionError(f"error event: {ev.error}")
            if ev.type == done:
                return ev
    raise AssertionError(f"connection closed before {done}")


def _heard(gateway_url: str, pcm: bytes) -> str:
    """What Whisper hears in june's reply audio (language=en: offline Kokoro's voices are Japanese ones)."""
    response = httpx.post(
        f"{gateway_url}/v1/audio/transcriptions",
        files={"file": ("reply.wav", pcm_wav(pcm), "audio/wav")},
        data={"model": "whisper-1", "language": "en"},
        timeout=TIMEOUT,
    )
    response.raise_for_status()
    return response.json()["text"]


@pytest.mark.parametrize("engine", TTS_ENGINES)
def test_spoken_turn_through_the_sdk(gateways: Any, engine: str, clips: dict[str, bytes]) -> None:
    """A spoken turn, answered in the voice of each speech engine (a gateway per engine)."""
    gateway_url = gateways(engine)

    async def run() -> tuple[list[Any], bytes]:
        client = AsyncOpenAI(base_url=f"{gateway_url}/v1", api_key="unused")
        log: list[Any] = []
        async with client.realtime.connect(model="june") as conn:
            await conn.session.update(session=SESSION)  # type: ignore[arg-type]
            await stream_pcm(clips[QUESTION], lambda b64: conn.input_audio_buffer.append(audio=b64), chunk_ms=40)
            await _events_until(conn, "response.done", log)
        audio = b"".join(base64.b64decode(ev.delta) for ev in log if ev.type == "response.output_audio.delta")
        return log, audio

    log, audio = anyio.run(run)
    types = [ev.type for ev in log]
    for expected in (
        "session.created",
        "session.updated",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.output_audio.delta",
        "response.output_audio_transcript.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.done",
    ):
        assert expected in types, (expected, types)
    heard_user = next(ev.transcript for ev in log if ev.type == "conversation.item.input_audio_transcription.completed")
    assert wer(QUESTION, heard_user) <= 0.3, heard_user
    done = log[-1].response
    assert done.status == "completed" and done.usage.output_tokens > 0
    reply = next(ev.transcript for ev in log if ev.type == "response.output_audio_transcript.done")
    assert reply.strip() and "<think>" not in reply
    assert "".join(ev.delta for ev in log if ev.type == "response.output_audio_transcript.delta") == reply
    assert done.output[0].content[0].transcript == reply
    assert len(audio) > 24000 * 2 * 0.5  # at least half a second of speech
    heard_reply = _heard(gateways(TTS_ENGINES[0]), audio)  # the default service has Whisper loaded
    assert wer(reply, heard_reply) <= 0.3, (reply, heard_reply)


def test_barge_in_cancels_the_reply(gateway_url: str, clips: dict[str, bytes]) -> None:
    async def run() -> list[tuple[float, Any]]:
        client = AsyncOpenAI(base_url=f"{gateway_url}/v1", api_key="unused")
        log: list[tuple[float, Any]] = []
        async with client.realtime.connect(model="june") as conn:
            await conn.session.update(session={**SESSION, "max_output_tokens": 400})  # type: ignore[arg-type]
            # A long reply, so that it is still being generated and spoken when the user talks over it.
            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "Tell me a long story about a dragon, at least ten sentences."}
                    ],
                }
            )
            await conn.response.create()
            async with asyncio.timeout(TIMEOUT):
                async for ev in conn:  # wait until the reply is playing
                    log.append((time.monotonic(), ev))
                    if ev.type == "response.output_audio.delta":
                        break
            sender = asyncio.create_task(
                stream_pcm(clips[INTERRUPTION], lambda b64: conn.input_audio_buffer.append(audio=b64))
            )
            async with asyncio.timeout(TIMEOUT):
                async for ev in conn:  # until the interruption is answered in full
                    log.append((time.monotonic(), ev))
                    assert ev.type != "error", ev
                    if ev.type == "response.done" and ev.response.status == "completed" and sender.done():
                        break
            await sender
        return log

    log = anyio.run(run)
    events = [ev for _, ev in log]
    first_id = next(ev.response.id for ev in events if ev.type == "response.created")
    first_audio = next(i for i, ev in enumerate(events) if ev.type == "response.output_audio.delta")
    barge = next(i for i, ev in enumerate(events) if ev.type == "input_audio_buffer.speech_started" and i > first_audio)
    first_done = next(i for i, ev in enumerate(events) if ev.type == "response.done" and ev.response.id == first_id)
    assert first_done > barge
    assert events[first_done].response.status == "cancelled"
    assert events[first_done].response.status_details.reason == "turn_detected"
    # No audio of the first reply after the barge-in was seen, and it stopped at once.
    assert not [
        ev for ev in events[first_done:] if ev.type == "response.output_audio.delta" and ev.response_id == first_id
    ]
    assert log[first_done][0] - log[barge][0] < 1.0
    # The assistant item keeps what was heard: no more than the transcript sent before the barge-in.
    sent = "".join(
        ev.delta
        for ev in events[:barge]
        if ev.type == "response.output_audio_transcript.delta" and ev.response_id == first_id
    )
    kept = events[first_done].response.output[0].content[0].transcript
    assert kept and sent.startswith(kept)
    # The interruption is answered in full.
    second = events[-1].response
    assert second.id != first_id and second.status == "completed"
    heard = next(
        ev.transcript for ev in reversed(events) if ev.type == "conversation.item.input_audio_transcription.completed"
    )
    assert wer(INTERRUPTION, heard) <= 0.3, heard


def _inflight(gateway_url: str) -> float:
    text = httpx.get(f"{gateway_url}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("june_gateway_upstream_inflight{")
    )


def test_a_client_that_vanishes_mid_reply_stops_the_work(gateway_url: str) -> None:
    from websockets.asyncio.client import connect

    async def run() -> None:
        async with connect(gateway_url.replace("http", "ws") + "/v1/realtime") as ws:
            await ws.send(
                json.dumps(
                    {
                        "type": "session.update",
                        "session": {"instructions": "Write a very long story.", "max_output_tokens": 2000},
                    }
                )
            )
            await ws.send(
                json.dumps(
                    {
                        "type": "conversation.item.create",
                        "item": {
                            "type": "message",
                            "role": "user",
                            "content": [{"type": "input_text", "text": "Tell me a long story about a dragon."}],
                        },
                    }
                )
            )
            await ws.send(json.dumps({"type": "response.create"}))
            async with asyncio.timeout(TIMEOUT):
                while json.loads(await ws.recv())["type"] != "response.output_audio_transcript.delta":
                    pass  # the model is generating and the speech service speaking
            assert _inflight(gateway_url) >= 1
        # Gone: the loopback chat stream and speech requests must be closed, not left to run.
        for _ in range(100):
            if _inflight(gateway_url) == 0:
                break
            await asyncio.sleep(0.1)
        assert _inflight(gateway_url) == 0
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{gateway_url}/health")).json() == {"status": "ok"}
            assert "june_realtime_sessions 0.0" in (await http.get(f"{gateway_url}/metrics")).text

    anyio.run(run)
