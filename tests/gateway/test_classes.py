"""Request classes through the real gateway (in front of the stub): who may ask for which, what the
upstreams are told (X-June-Class, vLLM's `priority`), admission by class, and the metrics."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from core.live_signal import LiveSignal
from core.priority import VLLM_PRIORITY
from gateway.app import create_app
from gateway.auth import make_key, parse_keys_file
from gateway.classes import LIVE_PROOF, resolve_class
from gateway.settings import RealtimeSettings
from tests.gateway.conftest import gateway_settings, serve_in_thread
from tests.gateway.stub_upstream import MODEL, StubUpstream

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


def _chat(**extra: object) -> dict:
    return {**CHAT, **extra}


def _class_seen(stub: StubUpstream) -> list[str | None]:
    return [s.header("x-june-class") for s in stub.seen if s.method == "POST"]


@pytest.fixture
def prio_gw(stub_url: str, tmp_path: Path) -> Iterator[tuple[str, object]]:
    """A keyed gateway that sends vLLM priorities; yields (url, app) so a test can read the live proof."""
    keys = tmp_path / "keys"
    keys.write_text("sk-user\nsk-batch class=batch\nsk-agent class=live\n")
    app = create_app(
        gateway_settings(stub_url, api_keys_file=keys, llm_priority=True, live_hold_s=10.0, read_timeout=10.0)
    )
    with serve_in_thread(app) as url:
        yield url, app


def _auth(key: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **headers}


def test_a_key_asks_for_its_class_or_a_lower_one() -> None:
    user, batch = make_key("a"), make_key("b", request_class="batch")
    assert resolve_class(None, None, user, live=False) == "interactive"
    assert resolve_class("Batch ", None, user, live=False) == "batch"
    assert resolve_class(None, "flex", user, live=False) == "batch"  # OpenAI's flex processing
    assert resolve_class("interactive", "flex", user, live=False) == "interactive"  # the header wins
    assert resolve_class(None, None, batch, live=False) == "batch"
    assert resolve_class(None, None, user, live=True) == "live"  # a realtime session's own call
    for asked, key in (("live", user), ("interactive", batch), ("live", batch)):
        with pytest.raises(Exception) as refused:
            resolve_class(asked, None, key, live=False)
        assert getattr(refused.value, "status_code", None) == 403, asked
    with pytest.raises(Exception) as bad:
        resolve_class("urgent", None, user, live=False)
    assert getattr(bad.value, "status_code", None) == 400


def test_keys_file_class_field() -> None:
    keys = parse_keys_file("a\nb m1,m2 class=batch\nc class=live m1\n")
    assert [(k.request_class, k.models) for k in keys] == [
        ("interactive", None),
        ("batch", frozenset({"m1", "m2"})),
        ("live", frozenset({"m1"})),
    ]
    for line in ("d class=urgent", "e class=batch class=live", "f m1 m2"):
        with pytest.raises(ValueError, match="line 1"):
            parse_keys_file(line)


def test_upstreams_are_told_the_class_and_vllm_its_priority(prio_gw: tuple[str, object], stub: StubUpstream) -> None:
    url, _ = prio_gw
    with httpx.Client(base_url=url, timeout=10) as http:
        # A client's own `priority` cannot jump the queue: the gateway's comes last, and JSON keeps the last.
        sent = json.dumps(_chat(priority=-100)).encode() + b"\n"
        ok = http.post(
            "/v1/chat/completions", content=sent, headers=_auth("sk-user", **{"Content-Type": "application/json"})
        )
        assert ok.status_code == 200, ok.text
        http.post("/v1/chat/completions", json=_chat(), headers=_auth("sk-user", **{"X-June-Class": "batch"}))
        http.post("/v1/chat/completions", json=_chat(service_tier="flex"), headers=_auth("sk-user"))
        http.post("/v1/chat/completions", json=_chat(), headers=_auth("sk-batch"))
        http.post("/v1/chat/completions", json=_chat(), headers=_auth("sk-agent"))
    assert _class_seen(stub) == ["interactive", "batch", "batch", "batch", "live"]
    priorities = [json.loads(s.body)["priority"] for s in stub.seen]
    assert priorities == [VLLM_PRIORITY[c] for c in ("interactive", "batch", "batch", "batch", "live")]
    first = stub.seen[0].body
    assert first == sent.rstrip()[:-1] + b',"priority":10}'  # the client's bytes, then the class's
    assert all(s.header(LIVE_PROOF) is None for s in stub.seen)


def test_live_needs_the_gateways_proof(prio_gw: tuple[str, object], stub: StubUpstream) -> None:
    url, _ = prio_gw
    with httpx.Client(base_url=url, timeout=10) as http:
        for headers in ({"X-June-Class": "live"}, {"X-June-Class": "live", LIVE_PROOF: "guess"}):
            refused = http.post("/v1/chat/completions", json=_chat(), headers=_auth("sk-user", **headers))
            assert refused.status_code == 403, refused.text
            error = refused.json()["error"]
            assert (error["code"], error["param"], error["type"]) == (
                "class_not_allowed",
                "X-June-Class",
                "permission_error",
            )
        bad = http.post("/v1/chat/completions", json=_chat(), headers=_auth("sk-user", **{"X-June-Class": "vip"}))
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_value"
        batch = http.post(
            "/v1/chat/completions", json=_chat(), headers=_auth("sk-batch", **{"X-June-Class": "interactive"})
        )
        assert batch.status_code == 403
    assert stub.seen == []  # nothing refused reached an upstream


@pytest.mark.parametrize("hold_s", [10.0, 0.3], ids=["held-until-first-audio", "held-at-most-hold_s"])
def test_a_live_turn_holds_other_work_until_its_answer_plays(stub_url: str, stub: StubUpstream, hold_s: float) -> None:
    """While a realtime response waits for its first audio, an interactive request waits at the gateway;
    it goes once the audio starts, or after `live_hold_s` at most (nothing starves)."""
    # Deltas 0.25 s apart: the first sentence's audio comes ~2 s after the LLM is asked, the second ~1.25 s later.
    stub.script = ["The", " sky", " is", " blue", " because", " air", " scatters", " light."]
    stub.script += [" Sunsets", " are", " red", " and", " gold."]
    no_lead = RealtimeSettings(playback_lead_s=0)  # the stub's audio is milliseconds long: never ahead
    app = create_app(gateway_settings(stub_url, live_hold_s=hold_s, read_timeout=10.0, realtime=no_lead))

    async def run(url: str) -> tuple[float, float]:
        async with (
            connect(url.replace("http", "ws") + "/v1/realtime") as ws,
            httpx.AsyncClient(base_url=url, timeout=20) as http,
        ):
            item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Why?"}]}
            await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
            await ws.send(json.dumps({"type": "response.create"}))
            other: asyncio.Task[httpx.Response] | None = None
            first_audio = 0.0
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 20))
                assert message["type"] != "error", message
                if message["type"] == "response.created":
                    other = asyncio.create_task(http.post("/v1/chat/completions", json=_chat()))
                if message["type"] == "response.output_audio.delta" and not first_audio:
                    first_audio = time.monotonic()
                if message["type"] == "response.done":
                    break
            assert other is not None and (await other).status_code == 200
            return first_audio, time.monotonic()

    with serve_in_thread(app) as url:
        first_audio, done = asyncio.run(run(url))
    live_chat = next(s for s in stub.seen if s.header("x-june-class") == "live" and s.path.endswith("completions"))
    other = next(s for s in stub.seen if s.header("x-june-class") == "interactive")
    if hold_s > 1:  # the interactive request waited for the reply's first audio, not for its end
        assert other.at >= first_audio - 0.05 and other.at - live_chat.at >= 1.5
        assert other.at < done - 0.5
    else:  # held 0.3 s at most, then sent while the reply was still being written
        assert other.at - live_chat.at < 1.2 and other.at < first_audio - 0.5


def test_a_live_turn_opens_the_live_window_until_its_first_audio(
    stub_url: str, stub: StubUpstream, tmp_path: Path
) -> None:
    """With a live window file (core.live_signal), the gateway resets it when it starts, announces a
    realtime response's wait for its answer there (deadline: `live_hold_s` after the turn ended), and
    closes it when the first audio goes out; vLLM and the speech service pause other work meanwhile."""
    stub.script = ["The", " sky", " is", " blue", " because", " air", " scatters", " light."]
    window = LiveSignal(tmp_path / "live")
    window.set(time.monotonic() + 30)  # left by an earlier gateway
    no_lead = RealtimeSettings(playback_lead_s=0)  # the stub's audio is milliseconds long: never ahead
    app = create_app(
        gateway_settings(stub_url, live_hold_s=10.0, read_timeout=10.0, live_signal=window.path, realtime=no_lead)
    )
    seen: dict[str, float] = {}

    async def run(url: str) -> None:
        async with connect(url.replace("http", "ws") + "/v1/realtime") as ws:
            seen["at start"] = window.remaining()
            item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Why?"}]}
            await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
            await ws.send(json.dumps({"type": "response.create"}))
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 20))
                assert message["type"] != "error", message
                if message["type"] == "response.created":
                    seen["waiting for the answer"] = window.remaining()
                if message["type"] == "response.output_audio.delta":
                    seen.setdefault("first audio", window.remaining())
                if message["type"] == "response.done":
                    break

    with serve_in_thread(app) as url:
        asyncio.run(run(url))
    assert seen["at start"] == 0.0
    assert 8.0 < seen["waiting for the answer"] <= 10.0
    assert seen["first audio"] == 0.0 and window.remaining() == 0.0


@pytest.mark.parametrize("lead_s", [1.0, 0.0], ids=["behind-playback-holds-again", "off"])
def test_a_spoken_reply_behind_its_playback_opens_the_live_window_again(
    stub_url: str, stub: StubUpstream, tmp_path: Path, lead_s: float
) -> None:
    """After the first audio, while the rest of the reply is written and its audio is less than
    `playback_lead_s` ahead of playback (the stub's audio is milliseconds long: always behind), the
    window is open again, for at most `live_hold_s` in all; it is closed once every piece is spoken."""
    stub.script = ["The", " sky", " is", " blue."] + [" Air", " scatters", " light", " a", " lot."] * 2
    window = LiveSignal(tmp_path / "live")
    app = create_app(
        gateway_settings(
            stub_url,
            live_hold_s=1.5,
            read_timeout=10.0,
            live_signal=window.path,
            realtime=RealtimeSettings(playback_lead_s=lead_s, llm_pauses_for_tts=False),  # deltas 0.25 s apart
        )
    )
    after_first_audio: list[tuple[float, float]] = []  # (seconds since the first audio, window open for)

    async def run(url: str) -> None:
        async with connect(url.replace("http", "ws") + "/v1/realtime") as ws:
            item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Why?"}]}
            await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
            await ws.send(json.dumps({"type": "response.create"}))
            first_audio = None
            while True:
                try:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 0.05))
                except TimeoutError:
                    if first_audio is not None:
                        after_first_audio.append((time.monotonic() - first_audio, window.remaining()))
                    continue
                assert message["type"] != "error", message
                if message["type"] == "response.output_audio.delta" and first_audio is None:
                    first_audio = time.monotonic()
                if message["type"] == "response.done":
                    break

    with serve_in_thread(app) as url:
        asyncio.run(run(url))
    assert after_first_audio and after_first_audio[-1][0] > 2.0  # the reply went on for seconds after it
    open_at = [t for t, left in after_first_audio if left > 0]
    if lead_s:
        assert open_at and min(open_at) < 0.3, after_first_audio  # held again at once: the audio is behind
        assert max(open_at) - min(open_at) <= 1.5 + 0.2  # for at most live_hold_s in all
    else:
        assert not open_at, after_first_audio
    assert window.remaining() == 0.0


def test_a_live_transcription_opens_the_live_window_while_it_runs(
    stub_url: str, stub: StubUpstream, tmp_path: Path
) -> None:
    """A realtime turn's transcription (also the early one, started at a pause where the turn may end)
    is live work the answer waits for: the window is open while it runs and closed once it is done."""
    stub.transcription_s = 1.0
    window = LiveSignal(tmp_path / "live")
    app = create_app(gateway_settings(stub_url, live_hold_s=10.0, read_timeout=10.0, live_signal=window.path))
    seen: list[float] = []

    async def run(url: str) -> None:
        async with connect(url.replace("http", "ws") + "/v1/realtime?intent=transcription") as ws:
            audio = base64.b64encode(bytes(48_000)).decode()  # 1 s of pcm16 at 24 kHz
            await ws.send(json.dumps({"type": "session.update", "session": {"type": "transcription",
                "audio": {"input": {"turn_detection": None}}}}))  # fmt: skip
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            while True:
                try:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 0.1))
                except TimeoutError:
                    seen.append(window.remaining())
                    continue
                assert message["type"] != "error", message
                if message["type"] == "conversation.item.input_audio_transcription.completed":
                    break

    with serve_in_thread(app) as url:
        asyncio.run(run(url))
    assert len(seen) >= 5 and all(8.0 < left <= 10.0 for left in seen[1:-1]), seen  # open while it ran
    assert window.remaining() == 0.0


@pytest.mark.parametrize(("headers", "announced"), [({}, True), ({"X-June-Class": "batch"}, False)])
def test_an_interactive_request_opens_the_windows_second_level_while_in_flight(
    stub_url: str, stub: StubUpstream, tmp_path: Path, headers: dict[str, str], announced: bool
) -> None:
    """An interactive request (here a transcription without a class, as a bot sends it) announces the
    window's second level from its arrival until it ends, for at most `interactive_hold_s`, so june's
    vLLM slows batch generations meanwhile; a batch request announces nothing."""
    stub.transcription_s = 1.0
    window = LiveSignal(tmp_path / "live")
    app = create_app(gateway_settings(stub_url, interactive_hold_s=20.0, read_timeout=10.0, live_signal=window.path))
    seen: list[dict[str, float]] = []
    with serve_in_thread(app) as url, concurrent.futures.ThreadPoolExecutor(1) as pool:
        form = {"file": ("a.wav", b"RIFF" + bytes(4000), "audio/wav")}
        sent = pool.submit(httpx.post, f"{url}/v1/audio/transcriptions", files=form, data={"model": "whisper-1"},
            headers=headers, timeout=10)  # fmt: skip
        while not sent.done():
            seen.append(window.windows())
            time.sleep(0.1)
        assert sent.result().status_code == 200
    assert len(seen) >= 5
    assert all(w["live"] == 0.0 for w in seen)
    if announced:
        assert all(18.0 < w["interactive"] <= 20.0 for w in seen[2:-2]), seen
    else:
        assert all(w["interactive"] == 0.0 for w in seen), seen
    assert window.windows() == {"live": 0.0, "interactive": 0.0}


def test_live_requests_themselves_hold_nothing(prio_gw: tuple[str, object], stub: StubUpstream) -> None:
    """A live request (here a keys-file live key, as an outside voice agent) goes at once and does not
    hold others: only a realtime turn waiting for its answer does."""
    url, _ = prio_gw

    async def run() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=20) as http:
            live = asyncio.create_task(
                http.post("/v1/chat/completions", json=_chat(stub={"sleep": 1.0}), headers=_auth("sk-agent"))
            )
            await asyncio.sleep(0.3)
            other = await http.post("/v1/chat/completions", json=_chat(), headers=_auth("sk-user"))
            assert other.status_code == 200 and not live.done()
            await live

    asyncio.run(run())
    assert _class_seen(stub) == ["live", "interactive"]


def test_batch_runs_one_at_a_time_and_a_full_queue_says_when_to_retry(stub_url: str, stub: StubUpstream) -> None:
    app = create_app(gateway_settings(stub_url, batch_concurrency=1, batch_queue=1))
    batch = {"X-June-Class": "batch"}
    with serve_in_thread(app) as url:

        async def run() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=20) as http:
                calls = []
                for _ in range(3):
                    calls.append(
                        asyncio.create_task(
                            http.post("/v1/chat/completions", json=_chat(stub={"sleep": 0.5}), headers=batch)
                        )
                    )
                    await asyncio.sleep(0.1)
                interactive = await http.post("/v1/chat/completions", json=_chat())  # not held by batch
                assert interactive.status_code == 200
                return [await c for c in calls]

        first, second, third = asyncio.run(run())
        metrics = httpx.get(f"{url}/metrics").text
    assert first.status_code == second.status_code == 200
    assert third.status_code == 503 and third.json()["error"]["code"] == "server_busy"
    assert int(third.headers["retry-after"]) >= 1
    batch_seen = [s for s in stub.seen if s.header("x-june-class") == "batch"]
    assert len(batch_seen) == 2 and batch_seen[1].at - batch_seen[0].at >= 0.45  # one after the other
    assert 'june_gateway_class_admitted_total{class="batch"} 2.0' in metrics
    assert 'june_gateway_class_admitted_total{class="interactive"} 1.0' in metrics
    assert 'june_gateway_class_refused_total{class="batch"} 1.0' in metrics
    assert 'june_gateway_class_queue_seconds_count{class="batch"} 2.0' in metrics
    assert 'june_gateway_class_service_seconds_count{class="interactive"} 1.0' in metrics


def test_a_realtime_sessions_calls_are_live(stub_url: str, stub: StubUpstream) -> None:
    app = create_app(gateway_settings(stub_url, llm_priority=True))
    with serve_in_thread(app) as url:

        async def run() -> None:
            ws_url = url.replace("http", "ws") + "/v1/realtime?model=june"
            async with connect(ws_url) as ws:

                async def next_of(kind: str) -> dict:
                    while True:
                        message = json.loads(await asyncio.wait_for(ws.recv(), 20))
                        if message["type"] in (kind, "error"):
                            return message

                await next_of("session.created")
                await ws.send(
                    json.dumps(
                        {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}}
                    )
                )
                item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}
                await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
                await ws.send(json.dumps({"type": "response.create"}))
                done = await next_of("response.done")
                assert done["type"] == "response.done", done

        asyncio.run(run())
    chats = [s for s in stub.seen if s.path == "/v1/chat/completions"]
    assert chats and all(s.header("x-june-class") == "live" for s in chats)
    assert all(json.loads(s.body)["priority"] == VLLM_PRIORITY["live"] for s in chats)
    assert all(s.header(LIVE_PROOF) is None for s in stub.seen)  # the proof never leaves the gateway
