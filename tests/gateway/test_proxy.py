"""Requests and responses cross the gateway as bytes: exact, incremental, with their headers."""

from __future__ import annotations

import hashlib
import json
import time

import httpx
import pytest

from gateway.app import create_app
from tests.gateway.conftest import gateway_settings, serve_in_thread
from tests.gateway.stub_upstream import (
    AUDIO_CHUNKS,
    CHAT_COMPLETION,
    MODEL,
    MODELS,
    SSE_CHUNKS,
    SSE_GAP,
    VOICES,
    StubUpstream,
)

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


def test_health(gw: str) -> None:
    r = httpx.get(f"{gw}/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_models_listed_without_a_request_body(gw: str, stub: StubUpstream) -> None:
    r = httpx.get(f"{gw}/v1/models")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == MODELS
    (seen,) = stub.seen
    assert (seen.method, seen.path, seen.body) == ("GET", "/v1/models", b"")
    assert seen.header("transfer-encoding") is None


def test_model_id_with_slash_reaches_the_upstream_path(gw: str, stub: StubUpstream) -> None:
    r = httpx.get(f"{gw}/v1/models/Qwen/Qwen2.5-Coder")
    assert r.status_code == 200
    assert r.json()["id"] == "Qwen/Qwen2.5-Coder"
    assert stub.seen[-1].path == "/v1/models/Qwen/Qwen2.5-Coder"


def test_chat_completion_body_and_headers_pass_through(gw: str) -> None:
    r = httpx.post(f"{gw}/v1/chat/completions", json=CHAT)
    assert r.status_code == 200
    assert r.content == CHAT_COMPLETION
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-stub"] == "chat"
    assert r.headers["content-length"] == str(len(CHAT_COMPLETION))


def test_unknown_fields_reach_the_upstream_byte_for_byte(gw: str, stub: StubUpstream) -> None:
    # Odd spacing, key order, an escaped and a raw non-ASCII character, fields nobody knows:
    # any parse-and-dump on the way would change these bytes.
    sent = (
        '{ "messages":[{"role":"user","content":"caf\\u00e9 \u2713"}],  "model":"stub-model",'
        ' "top_k":7, "x_vendor":{"nested":[1, 2.50, null]}, "guided_json": {"type":"object"} }'
    ).encode()
    r = httpx.post(
        f"{gw}/v1/chat/completions?api-version=2024-01&x=%2F",
        content=sent,
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 200
    (seen,) = stub.seen
    assert seen.body == sent
    assert seen.header("content-type") == "application/json; charset=utf-8"
    assert seen.query == b"api-version=2024-01&x=%2F"


def test_completions_forwarded(gw: str, stub: StubUpstream) -> None:
    body = {"model": MODEL, "prompt": "def f(", "max_tokens": 3, "x_unknown": True}
    r = httpx.post(f"{gw}/v1/completions", json=body)
    assert r.status_code == 200
    assert r.json() == {"object": "text_completion", "echo": body}


def test_authorization_and_hop_by_hop_headers_stay_behind(gw: str, stub: StubUpstream) -> None:
    r = httpx.post(
        f"{gw}/v1/chat/completions",
        json=CHAT,
        headers={
            "authorization": "Bearer client-secret",
            "x-trace-id": "t-42",
            "connection": "keep-alive, x-hop",
            "x-hop": "one-hop-only",
            "keep-alive": "timeout=5",
        },
    )
    assert r.status_code == 200
    (seen,) = stub.seen
    names = {k for k, _ in seen.headers}
    assert "authorization" not in names
    assert "x-hop" not in names
    assert "keep-alive" not in names
    assert seen.header("x-trace-id") == "t-42"


def test_upstream_error_status_and_body_pass_through(gw: str) -> None:
    r = httpx.post(f"{gw}/v1/chat/completions", json={**CHAT, "stub": {"status": 400}})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "stub"


def test_chat_stream_is_byte_exact(gw: str) -> None:
    with httpx.stream("POST", f"{gw}/v1/chat/completions", json={**CHAT, "stream": True}, timeout=10) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream"  # no charset added on the way
        assert r.headers["x-stub"] == "sse"
        received = b"".join(r.iter_raw())
    assert received == b"".join(SSE_CHUNKS)


def test_chat_stream_arrives_chunk_by_chunk(gw: str, stub: StubUpstream) -> None:
    start = time.monotonic()
    with httpx.stream("POST", f"{gw}/v1/chat/completions", json={**CHAT, "stream": True}, timeout=10) as r:
        pieces = r.iter_raw()
        first = next(pieces)
        first_at = time.monotonic() - start
        upstream_done_before_first = stub.stream_finished.is_set()
        rest = b"".join(pieces)
    total = time.monotonic() - start
    # The upstream needs (len-1) gaps to finish; the first chunk must not wait for them.
    assert not upstream_done_before_first
    assert first == SSE_CHUNKS[0]
    assert total - first_at >= (len(SSE_CHUNKS) - 2) * SSE_GAP
    assert first + rest == b"".join(SSE_CHUNKS)


def test_client_disconnect_closes_the_upstream_stream(gw: str, stub: StubUpstream) -> None:
    long_stream = {**CHAT, "stream": True, "stub": {"repeat": 40}}  # ~10 s if read to the end
    with httpx.stream("POST", f"{gw}/v1/chat/completions", json=long_stream, timeout=10) as r:
        next(r.iter_raw())
    # Leaving the block drops the connection mid-body; the gateway must drop its upstream one.
    assert stub.stream_cut.wait(timeout=3), "the upstream kept streaming after the client left"
    assert not stub.stream_finished.is_set()


def _multipart(boundary: str, audio: bytes) -> bytes:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="response_format"\r\n\r\njson\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="clip.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    return head + audio + f"\r\n--{boundary}--\r\n".encode()


def test_multipart_uploads_pass_untouched(gw: str, stub: StubUpstream) -> None:
    boundary = "june-gateway-test-7d3f"
    audio = b"RIFF" + bytes(range(256)) * 64 + b"\r\n--june-gateway-test\r\n"  # boundary-like bytes inside
    body = _multipart(boundary, audio)
    content_type = f"multipart/form-data; boundary={boundary}"
    for path in ("/v1/audio/transcriptions", "/v1/audio/translations"):
        stub.reset()
        r = httpx.post(f"{gw}{path}", content=body, headers={"content-type": content_type})
        assert r.status_code == 200, r.text
        assert r.json() == {
            "text": f"{len(body)} bytes",
            "content_type": content_type,
            "sha256": hashlib.sha256(body).hexdigest(),
        }
        (seen,) = stub.seen
        assert (seen.path, seen.body) == (path, body)


def test_speech_audio_is_byte_exact(gw: str, stub: StubUpstream) -> None:
    request = {"model": "kokoro", "input": "hello", "voice": "af_heart", "response_format": "mp3"}
    with httpx.stream("POST", f"{gw}/v1/audio/speech", json=request) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "audio/mpeg"
        audio = b"".join(r.iter_raw())
    assert audio == b"".join(AUDIO_CHUNKS)
    assert json.loads(stub.seen[-1].body) == request


def test_voices_listed(gw: str) -> None:
    r = httpx.get(f"{gw}/v1/audio/voices")
    assert r.status_code == 200
    assert r.json() == VOICES


def test_unknown_route_is_a_404_envelope(gw: str) -> None:
    r = httpx.get(f"{gw}/v1/nope")
    assert r.status_code == 404
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_an_upstream_cookie_reaches_its_caller_but_no_other_request(gw: str, stub: StubUpstream) -> None:
    # One upstream client serves every caller: a stored cookie would leak between users.
    first = httpx.post(f"{gw}/v1/chat/completions", json={**CHAT, "stub": {"set_cookie": "session=alice; Path=/"}})
    assert first.status_code == 200
    assert first.headers["set-cookie"] == "session=alice; Path=/"
    second = httpx.post(f"{gw}/v1/chat/completions", json=CHAT)
    assert second.status_code == 200
    assert stub.seen[-1].header("cookie") is None


def test_client_leaving_before_the_answer_cancels_the_upstream_request(stub_url: str, stub: StubUpstream) -> None:
    # A non-streamed generation: nothing is relayed until the upstream answers, so the gateway
    # must watch the client while it waits, or the upstream generates for nobody.
    with serve_in_thread(create_app(gateway_settings(stub_url, read_timeout=30))) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "stub": {"hold": 20}}, timeout=0.5)
        assert stub.request_cut.wait(timeout=5), "the upstream request outlived its client"
        metrics = httpx.get(f"{url}/metrics").text
    assert (
        'june_gateway_errors_total{code="client_closed_request",key="anonymous"'
        ',model="-",route="/v1/chat/completions"} 1.0'
    ) in metrics


def test_wrong_method_is_a_405_envelope(gw: str, stub: StubUpstream) -> None:
    r = httpx.get(f"{gw}/v1/chat/completions")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert r.json()["error"]["code"] == "method_not_allowed"
    r = httpx.post(f"{gw}/v1/models", json={})
    assert (r.status_code, r.headers["allow"]) == (405, "GET")
    assert stub.seen == []


def test_upstream_dying_mid_stream_breaks_the_client_connection(gw: str, stub: StubUpstream) -> None:
    # The status line is out already: a truncated body (no clean end, no [DONE]) is the only honest signal.
    received = b""
    with httpx.stream(
        "POST", f"{gw}/v1/chat/completions", json={**CHAT, "stream": True, "stub": {"repeat": 5, "die_after": 2}}
    ) as r:
        assert r.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            for chunk in r.iter_raw():
                received += chunk
    assert received == b"".join(SSE_CHUNKS[:2])
    metrics = httpx.get(f"{gw}/metrics").text
    assert 'code="upstream_broke_off"' in metrics
    assert httpx.post(f"{gw}/v1/chat/completions", json=CHAT).status_code == 200  # and the gateway carries on
