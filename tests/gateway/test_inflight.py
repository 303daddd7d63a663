"""The per-server in-flight count (least-busy routing's input, /metrics' june_gateway_upstream_inflight)
returns to zero after any mix of finished, failed and abandoned requests."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app
from tests.gateway.conftest import READ_TIMEOUT, gateway_settings, serve_in_thread
from tests.gateway.stub_upstream import MODEL

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
BOUNDARY = "inflight-b"
FORM_HEAD = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n'
).encode()
FORM = FORM_HEAD + b"RIFF" * 4096 + f"\r\n--{BOUNDARY}--\r\n".encode()
FORM_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


@pytest.fixture
def own_gw(stub_url: str) -> Iterator[str]:
    """A gateway of its own for each test, so no other request moves its gauges."""
    with serve_in_thread(create_app(gateway_settings(stub_url))) as url:
        yield url


def inflight(gw: str) -> dict[str, float]:
    """{upstream: requests in flight} from the gateway's /metrics."""
    text = httpx.get(f"{gw}/metrics").text
    return {
        s.labels["upstream"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "june_gateway_upstream_inflight"
    }


def _finished(gw: str) -> None:
    with httpx.Client(base_url=gw, timeout=10) as c:
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200
        assert c.post("/v1/chat/completions", json={**CHAT, "stream": True}).status_code == 200
        assert c.post("/v1/audio/transcriptions", content=FORM, headers={"content-type": FORM_TYPE}).status_code == 200
        assert (
            c.post("/v1/audio/speech", json={"model": "tts-1", "input": "hi", "voice": "af_heart"}).status_code == 200
        )


def _failed(gw: str) -> None:
    with httpx.Client(base_url=gw, timeout=10) as c:
        assert c.post("/v1/chat/completions", json={**CHAT, "stub": {"status": 500}}).status_code == 500
        assert c.post("/v1/chat/completions", json={**CHAT, "stub": {"sleep": READ_TIMEOUT + 0.5}}).status_code == 504
        with pytest.raises(httpx.RemoteProtocolError):  # the upstream dies mid-stream
            c.post("/v1/chat/completions", json={**CHAT, "stream": True, "stub": {"repeat": 3, "die_after": 2}})


def _left_before_headers(gw: str) -> None:
    with pytest.raises(httpx.ReadTimeout):  # a long non-streamed generation, client gives up
        httpx.post(f"{gw}/v1/chat/completions", json={**CHAT, "stub": {"hold": 5}}, timeout=0.4)


def _left_mid_stream(gw: str) -> None:
    with httpx.stream(
        "POST", f"{gw}/v1/chat/completions", json={**CHAT, "stream": True, "stub": {"repeat": 40}}, timeout=10
    ) as r:
        next(r.iter_raw())
    with httpx.stream("POST", f"{gw}/v1/audio/speech", json={"model": "tts-1", "input": "hi"}, timeout=10) as r:
        next(r.iter_raw())


def _left_mid_upload(gw: str) -> None:
    # Headers and part of the body, then the connection drops: the upstream already has the request.
    address = urlsplit(gw)
    head = (
        f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: {FORM_TYPE}\r\n"
        f"Content-Length: {len(FORM) * 10}\r\n\r\n"
    ).encode()
    with socket.create_connection((address.hostname, address.port)) as s:
        s.sendall(head + FORM[: len(FORM) // 2])
        time.sleep(0.3)


def _left_mid_chunked_upload(gw: str) -> None:
    address = urlsplit(gw)
    head = (
        f"POST /v1/audio/translations HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: {FORM_TYPE}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    with socket.create_connection((address.hostname, address.port)) as s:
        s.sendall(head + f"{len(FORM_HEAD):x}\r\n".encode() + FORM_HEAD + b"\r\n")
        time.sleep(0.3)


KINDS: dict[str, Callable[[str], None]] = {
    "finished": _finished,
    "failed": _failed,
    "left before headers": _left_before_headers,
    "left mid-stream": _left_mid_stream,
    "left mid-upload": _left_mid_upload,
    "left mid chunked upload": _left_mid_chunked_upload,
}


def _settled(gw: str, deadline_s: float = 10.0) -> dict[str, float]:
    # Bookkeeping ends just after each client leaves: wait for it, not for a fixed time.
    end = time.monotonic() + deadline_s
    while (counts := inflight(gw)) and any(counts.values()) and time.monotonic() < end:
        time.sleep(0.1)
    return counts


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_of_request_gives_its_count_back(own_gw: str, kind: str) -> None:
    assert _settled(own_gw) == {"llm": 0, "speech": 0}
    KINDS[kind](own_gw)
    assert _settled(own_gw) == {"llm": 0, "speech": 0}, kind


def test_a_concurrent_mix_gives_every_count_back(own_gw: str) -> None:
    assert _settled(own_gw) == {"llm": 0, "speech": 0}
    with ThreadPoolExecutor(max_workers=12) as pool:
        for future in [pool.submit(run, own_gw) for run in list(KINDS.values()) * 2]:
            future.result()
    assert _settled(own_gw) == {"llm": 0, "speech": 0}
    # And least-busy routing still sees an idle server: a request goes through.
    assert httpx.post(f"{own_gw}/v1/chat/completions", json=CHAT).status_code == 200


def test_uploads_the_gateway_cuts_short_give_their_count_back(stub_url: str, tmp_path) -> None:
    # A key with an allow-list: the gateway reads the form's model as it streams to the upstream and
    # cuts the upload off when the model (after 16 KB of audio) is not allowed.
    keys = tmp_path / "keys.txt"
    keys.write_text("sk-only-whisper whisper-1\n")
    forbidden = (
        FORM_HEAD
        + b"RIFF" * 4096
        + (
            f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\nlarge-v3\r\n--{BOUNDARY}--\r\n'
        ).encode()
    )
    headers = {"authorization": "Bearer sk-only-whisper", "content-type": FORM_TYPE}
    with (
        serve_in_thread(create_app(gateway_settings(stub_url, api_keys_file=keys))) as gw,
        httpx.Client(base_url=gw) as c,
    ):
        for _ in range(3):
            pieces = [forbidden[i : i + 4096] for i in range(0, len(forbidden), 4096)]
            assert c.post("/v1/audio/transcriptions", content=iter(pieces), headers=headers).status_code == 403
        assert (
            c.post(
                "/v1/audio/transcriptions", content=FORM.replace(b"whisper-1", b"large-v3"), headers=headers
            ).status_code
            == 403
        )
        assert c.post("/v1/audio/transcriptions", content=FORM, headers=headers).status_code == 200
        assert _settled(gw) == {"llm": 0, "speech": 0}
