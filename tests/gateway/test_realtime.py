"""/v1/realtime on its own: the protocol's refusals and bounds (no model needed), against the stub upstream.

A raw WebSocket client (websockets, the SDK's own transport) sends what the SDK would never send:
broken JSON, bad base64, unknown events, a 10 MB frame. Each must come back as an `error` event in
OpenAI's shape with the socket still usable afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import anyio
import pytest
from openai import AsyncOpenAI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateway.settings import GatewaySettings, RealtimeSettings
from tests.gateway.conftest import KEYS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _ws(url: str) -> str:
    return url.replace("http://", "ws://") + "/v1/realtime?model=june"


async def _next(ws: Any, kind: str | None = None, timeout: float = 10) -> dict[str, Any]:
    """The next server event (of type `kind` when given, skipping others)."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if kind is None or message["type"] == kind:
            return message


def _assert_error(message: dict[str, Any], code: str, param: str | None = None) -> None:
    assert message["type"] == "error", message
    error = message["error"]
    assert set(error) >= {"type", "code", "message", "param", "event_id"}
    assert error["code"] == code, error
    assert error["message"]
    if param is not None:
        assert error["param"] == param


async def _still_serves(ws: Any) -> None:
    await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief."}}))
    updated = await _next(ws)
    assert updated["type"] == "session.updated" and updated["session"]["instructions"] == "Be brief."


def test_session_created_and_update_round_trip(gw: str) -> None:
    async def run() -> None:
        async with connect(_ws(gw)) as ws:
            created = await _next(ws)
            assert created["type"] == "session.created"
            assert created["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
            assert created["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"
            update = {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {
                        "input": {
                            "turn_detection": {
                                "type": "server_vad",
                                "threshold": 0.7,
                                "prefix_padding_ms": 200,
                                "silence_duration_ms": 300,
                            },
                            "transcription": {"model": "whisper-1", "language": "en"},
                        },
                        "output": {"voice": "alloy"},
                    },
                },
            }
            await ws.send(json.dumps(update))
            session = (await _next(ws))["session"]
            vad = session["audio"]["input"]["turn_detection"]
            assert (vad["threshold"], vad["prefix_padding_ms"], vad["silence_duration_ms"]) == (0.7, 200, 300)
            assert session["audio"]["output"]["voice"] == "alloy"
            await ws.send(
                json.dumps({"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}})
            )
            assert (await _next(ws))["session"]["audio"]["input"]["turn_detection"] is None

    anyio.run(run)


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        ({"type": "input_audio_buffer.append", "audio": "not base64!!"}, "invalid_value", "audio"),
        (
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\x01\x02\x03").decode()},
            "invalid_value",
            "audio",
        ),
        ({"type": "input_audio_buffer.append"}, "invalid_value", "audio"),
        ({"type": "conversation.item.delete_everything"}, "invalid_value", "type"),
        ({"no": "type"}, "invalid_event", "type"),
        (
            {
                "type": "session.update",
                "session": {"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 7}}}},
            },
            "invalid_value",
            "session.audio.input.turn_detection.threshold",
        ),
        (
            {"type": "session.update", "session": {"audio": {"input": {"format": {"type": "audio/pcmu"}}}}},
            "unsupported_format",
            None,
        ),
        ({"type": "input_audio_buffer.commit"}, "input_audio_buffer_commit_empty", None),
        ({"type": "response.cancel"}, "response_cancel_not_active", None),
        (
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "user", "content": [{"type": "input_image"}]},
            },
            "unsupported_content_type",
            "item.content[0].type",
        ),
        (
            {"type": "conversation.item.truncate", "item_id": "item_nope", "content_index": 0, "audio_end_ms": 10},
            "item_not_found",
            "item_id",
        ),
    ],
)
def test_bad_event_gets_an_error_event_and_the_session_goes_on(
    gw: str, event: dict, code: str, param: str | None
) -> None:
    async def run() -> None:
        async with connect(_ws(gw)) as ws:
            await _next(ws, "session.created")
            await ws.send(json.dumps({**event, "event_id": "evt_client_1"}))
            error = await _next(ws)
            _assert_error(error, code, param)
            if "type" in event:
                assert error["error"]["event_id"] == "evt_client_1"
            await _still_serves(ws)

    anyio.run(run)


def test_invalid_json_and_binary_frames(gw: str) -> None:
    async def run() -> None:
        async with connect(_ws(gw)) as ws:
            await _next(ws, "session.created")
            await ws.send("{not json")
            _assert_error(await _next(ws), "invalid_json")
            await ws.send(b"\xff\xfe binary")
            _assert_error(await _next(ws), "invalid_json")
            await _still_serves(ws)

    anyio.run(run)


def test_a_10_mb_frame_is_refused_with_an_error_event(gw: str) -> None:
    async def run() -> None:
        async with connect(_ws(gw), max_size=None) as ws:
            await _next(ws, "session.created")
            huge = base64.b64encode(bytes(7_500_000)).decode()  # 10 MB of base64
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": huge}))
            _assert_error(await _next(ws, timeout=30), "event_too_large")
            await _still_serves(ws)

    anyio.run(run)


def test_manual_buffer_is_bounded(gw: str) -> None:
    async def run() -> None:
        async with connect(_ws(gw), max_size=None) as ws:
            await _next(ws, "session.created")
            await ws.send(
                json.dumps({"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}})
            )
            await _next(ws, "session.updated")
            second = base64.b64encode(bytes(48000 * 2)).decode()  # 2 s of silence per event
            for _ in range(30):  # 60 s: the limit
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": second}))
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": second}))
            _assert_error(await _next(ws), "input_audio_buffer_too_large", "audio")
            await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
            assert (await _next(ws))["type"] == "input_audio_buffer.cleared"

    anyio.run(run)


def test_keyed_gateway_wants_a_key_bearer_or_subprotocol(keyed_gw: str) -> None:
    async def run() -> None:
        async with connect(_ws(keyed_gw)) as ws:  # no key: told why, then closed (policy violation)
            _assert_error(await _next(ws), "invalid_api_key")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        async with connect(_ws(keyed_gw), subprotocols=["realtime", f"openai-insecure-api-key.{KEYS[0]}"]) as ws:
            assert ws.subprotocol == "realtime"
            assert (await _next(ws))["type"] == "session.created"
        async with connect(_ws(keyed_gw), additional_headers={"Authorization": "Bearer sk-wrong"}) as ws:
            _assert_error(await _next(ws), "invalid_api_key")
        client = AsyncOpenAI(base_url=f"{keyed_gw}/v1", api_key=KEYS[1])  # the SDK sends Authorization: Bearer
        async with client.realtime.connect(model="june") as conn:
            assert (await conn.recv()).type == "session.created"

    anyio.run(run)


def test_metrics_count_realtime_sessions_and_events(gw: str) -> None:
    import httpx

    async def run() -> None:
        async with httpx.AsyncClient() as http:
            async with connect(_ws(gw)) as ws:
                await _next(ws, "session.created")
                await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
                await _next(ws)
                text = (await http.get(f"{gw}/metrics")).text
                assert "june_realtime_sessions 1.0" in text
                assert 'june_realtime_events_total{type="input_audio_buffer.clear"}' in text
            for _ in range(50):
                if "june_realtime_sessions 0.0" in (await http.get(f"{gw}/metrics")).text:
                    return
                await asyncio.sleep(0.05)
        raise AssertionError("the session was not counted as closed")

    anyio.run(run)


def test_sessions_are_bounded_per_gateway(stub_url: str) -> None:
    from gateway.app import create_app
    from tests.gateway.conftest import gateway_settings, serve_in_thread

    async def run(url: str) -> None:
        async with connect(_ws(url)) as first:
            await _next(first, "session.created")
            async with connect(_ws(url)) as second:
                refused = await _next(second)
                _assert_error(refused, "too_many_sessions")
                assert "busy" in refused["error"]["message"] and "30 s" in refused["error"]["message"]
                with pytest.raises(ConnectionClosed) as closed:
                    await second.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
            await _still_serves(first)
        async with connect(_ws(url)) as again:  # the slot is free once the first one left
            assert (await _next(again))["type"] == "session.created"

    with serve_in_thread(create_app(gateway_settings(stub_url, realtime=RealtimeSettings(max_sessions=1)))) as url:
        anyio.run(run, url)


def test_gateway_without_the_realtime_extra_still_starts() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for m in ('numpy', 'av', 'onnxruntime', 'faster_whisper'): sys.modules[m] = None\n"
        "from gateway.app import create_app\nfrom gateway.settings import GatewaySettings\n"
        "create_app(GatewaySettings())\nprint('started')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "started" in done.stdout, done.stderr[-2000:]


def test_realtime_settings_keep_their_variable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """The realtime settings are a nested model, read from the same JUNE_GATEWAY_REALTIME_* variables."""
    monkeypatch.setenv("JUNE_GATEWAY_REALTIME_MAX_TURNS", "3")
    monkeypatch.setenv("JUNE_GATEWAY_REALTIME_LLM_PAUSES_FOR_TTS", "false")
    monkeypatch.setenv("JUNE_GATEWAY_REALTIME_TRANSCRIPTION_MODEL", "whisper-1")
    realtime = GatewaySettings().realtime
    assert (realtime.max_turns, realtime.llm_pauses_for_tts, realtime.transcription_model) == (3, False, "whisper-1")
    assert realtime.max_sessions == RealtimeSettings.model_fields["max_sessions"].default
