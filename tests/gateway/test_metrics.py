"""Prometheus metrics per key id and model; streamed reasoning and tool-call deltas pass byte-exact."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from gateway.app import create_app
from gateway.auth import make_key
from tests.gateway.conftest import gateway_settings, serve_in_thread
from tests.gateway.stub_upstream import MODEL, SSE_REASONING

KEY = "sk-metrics-test-secret"
KEY_ID = make_key(KEY).id
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def metered_gw(stub_url: str) -> Iterator[str]:
    with serve_in_thread(create_app(gateway_settings(stub_url, api_keys=[SecretStr(KEY)]))) as url:
        yield url


def _samples(gw: str) -> dict[tuple[str, frozenset], float]:
    text = httpx.get(f"{gw}/metrics").text
    assert KEY not in text  # the key id labels, never the key
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_requests_tokens_latency_and_ttft_per_key_and_model(metered_gw: str) -> None:
    auth = {"authorization": f"Bearer {KEY}"}
    before = _samples(metered_gw)
    route = "/v1/chat/completions"
    assert httpx.post(f"{metered_gw}{route}", json=CHAT, headers=auth).status_code == 200
    streamed = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    assert httpx.post(f"{metered_gw}{route}", json=streamed, headers=auth, timeout=10).status_code == 200
    assert httpx.post(f"{metered_gw}{route}", json={**CHAT, "stub": {"status": 400}}, headers=auth).status_code == 400
    time.sleep(0.2)  # bookkeeping finishes just after the last byte
    after = _samples(metered_gw)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("june_gateway_requests_total", key=KEY_ID, model=MODEL, route=route, status="200") == 2
    assert delta("june_gateway_requests_total", key=KEY_ID, model="-", route=route, status="400") == 1
    assert delta("june_gateway_errors_total", key=KEY_ID, model="-", route=route, code="400") == 1
    assert delta("june_gateway_tokens_total", key=KEY_ID, model=MODEL, kind="completion") == 2 + 7
    assert delta("june_gateway_tokens_total", key=KEY_ID, model=MODEL, kind="prompt") == 3 + 3
    assert delta("june_gateway_request_seconds_count", key=KEY_ID, model=MODEL, route=route) == 2
    assert delta("june_gateway_time_to_first_token_seconds_count", key=KEY_ID, model=MODEL) == 1
    ttft = delta("june_gateway_time_to_first_token_seconds_sum", key=KEY_ID, model=MODEL)
    latency = delta("june_gateway_request_seconds_sum", key=KEY_ID, model=MODEL, route=route)
    assert 0 < ttft < latency  # the stream's first chunk came before its end


def test_rejections_are_counted(metered_gw: str) -> None:
    # An unknown model label stays "-": only models the upstream accepted become label values.
    before = _samples(metered_gw)
    auth = {"authorization": f"Bearer {KEY}"}
    httpx.post(
        f"{metered_gw}/v1/chat/completions", json={**CHAT, "model": "made-up", "stub": {"status": 404}}, headers=auth
    )
    after = _samples(metered_gw)
    assert not any(dict(labels).get("model") == "made-up" for _, labels in after)
    key = (
        "june_gateway_errors_total",
        frozenset({"key": KEY_ID, "model": "-", "route": "/v1/chat/completions", "code": "404"}.items()),
    )
    assert after.get(key, 0) - before.get(key, 0) == 1


def test_reasoning_and_tool_call_deltas_pass_byte_exact(gw: str) -> None:
    # vLLM's reasoning parser puts thinking in `reasoning`/`reasoning_content`; the gateway must keep it
    # there, out of `content`, by not touching the bytes at all.
    body = {**CHAT, "stream": True, "stub": {"reasoning": True}}
    with httpx.stream("POST", f"{gw}/v1/chat/completions", json=body, timeout=10) as r:
        assert r.status_code == 200
        received = b"".join(r.iter_raw())
    assert received == b"".join(SSE_REASONING)
