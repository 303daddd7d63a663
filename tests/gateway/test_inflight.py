"""A client that leaves before the upstream answers frees the upstream's in-flight slot (least-busy routing
and the june_gateway_upstream_inflight gauge depend on it)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.gateway.stub_upstream import MODEL, StubUpstream


def _inflight(gw: str) -> float:
    lines = httpx.get(f"{gw}/metrics").text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith('june_gateway_upstream_inflight{upstream="llm"'))


def test_client_gone_before_the_upstream_answers_frees_the_slot(gw: str, stub: StubUpstream) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stub": {"hold": 5}}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gw}/v1/chat/completions", json=body, timeout=httpx.Timeout(5, read=0.5))
    assert stub.request_cut.wait(5)  # the upstream saw the gateway leave too
    deadline = time.monotonic() + 5
    while _inflight(gw) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _inflight(gw) == 0
