"""Upstream failures become OpenAI envelopes that name the upstream: 502 unreachable, 504 too slow."""

from __future__ import annotations

import time

import httpx
import pytest

from gateway.app import create_app
from tests.gateway.conftest import READ_TIMEOUT, gateway_settings, serve_in_thread
from tests.gateway.stub_upstream import MODEL, StubUpstream

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


def _envelope(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "server_error"
    return error


@pytest.mark.parametrize(
    ("method", "path", "upstream"),
    [
        ("POST", "/v1/chat/completions", "llm"),
        ("GET", "/v1/models", "llm"),
        ("POST", "/v1/audio/speech", "speech"),
        ("GET", "/v1/audio/voices", "speech"),
    ],
)
def test_dead_upstream_is_a_502_naming_it(dead_gw: str, method: str, path: str, upstream: str) -> None:
    r = httpx.request(method, f"{dead_gw}{path}", json=CHAT if method == "POST" else None)
    error = _envelope(r, 502)
    assert error["code"] == "upstream_unavailable"
    assert f"{upstream} upstream" in error["message"]


def test_slow_upstream_is_a_504_after_the_read_timeout(gw: str, stub: StubUpstream) -> None:
    start = time.monotonic()
    r = httpx.post(f"{gw}/v1/chat/completions", json={**CHAT, "stub": {"sleep": READ_TIMEOUT + 1.5}}, timeout=10)
    elapsed = time.monotonic() - start
    error = _envelope(r, 504)
    assert error["code"] == "upstream_timeout"
    assert "llm upstream" in error["message"]
    assert READ_TIMEOUT * 0.9 <= elapsed < READ_TIMEOUT + 1.5
    assert len(stub.seen) == 1


def test_oversized_body_is_a_413_envelope(stub_url: str, stub: StubUpstream) -> None:
    with serve_in_thread(create_app(gateway_settings(stub_url, max_body_bytes=1024))) as url:
        r = httpx.post(f"{url}/v1/audio/transcriptions", content=b"x" * 4096, headers={"content-type": "audio/wav"})
    assert r.status_code == 413
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert stub.seen == []
