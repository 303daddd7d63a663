"""Per-key limits: 429 with Retry-After and the rate_limit_error envelope, then recovery; in memory and
shared through a real Redis by two gateway replicas."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from core.limits import MemoryLimiter
from gateway.app import create_app, limits_from
from tests.gateway.conftest import gateway_settings, serve_in_thread
from tests.gateway.stub_upstream import MODEL, StubUpstream

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
WINDOW = 2.0
"""Window of the recovery test (s), moved through by its limiter's clock."""
LONG = 3600.0
"""A window no test run straddles (by more than a ~1/3600 chance)."""


def _keys(*names: str) -> list[SecretStr]:
    return [SecretStr(n) for n in names]


def _post(url: str, key: str, body: dict | None = None, **kw: object) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions", json=body or CHAT, headers={"authorization": f"Bearer {key}"}, timeout=10, **kw
    )


def _assert_429(r: httpx.Response, max_retry: float) -> int:
    assert r.status_code == 429, r.text
    error = r.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    assert set(error) == {"message", "type", "param", "code"}
    retry = int(r.headers["retry-after"])
    assert 1 <= retry <= max_retry
    return retry


class Clock:
    """The limiter's clock (seconds since the epoch), moved by the test instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # a window's beginning

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def rpm_gw(stub_url: str) -> Iterator[tuple[str, Clock]]:
    settings = gateway_settings(stub_url, api_keys=_keys("sk-a", "sk-b"), requests_per_minute=3, limit_window_s=WINDOW)
    clock = Clock()
    with serve_in_thread(create_app(settings, limiter=MemoryLimiter(limits_from(settings), clock=clock))) as url:
        yield url, clock


def test_requests_per_window_then_429_then_recovery(rpm_gw: tuple[str, Clock]) -> None:
    url, clock = rpm_gw
    assert [_post(url, "sk-a").status_code for _ in range(3)] == [200, 200, 200]
    clock.now += 0.5
    retry = _assert_429(_post(url, "sk-a"), WINDOW)
    assert retry == 2  # 1.5 s left in the window, rounded up
    assert _post(url, "sk-b").status_code == 200  # limits are per key
    clock.now += retry
    assert _post(url, "sk-a").status_code == 200


@pytest.fixture(scope="module")
def token_gw(stub_url: str) -> Iterator[str]:
    settings = gateway_settings(
        stub_url, api_keys=_keys("sk-json", "sk-sse", "sk-nousage"), completion_tokens_per_minute=5, limit_window_s=LONG
    )
    limiter = MemoryLimiter(limits_from(settings), clock=Clock())  # a clock that stands still: one window
    with serve_in_thread(create_app(settings, limiter=limiter)) as url:
        yield url


def test_completion_tokens_from_json_usage(token_gw: str) -> None:
    # The stub's completion reports 2 completion tokens: 2, 4, 6 (admitted at 4 < 5), then refused.
    assert [_post(token_gw, "sk-json").status_code for _ in range(3)] == [200, 200, 200]
    _assert_429(_post(token_gw, "sk-json"), LONG)
    assert "completion tokens" in _post(token_gw, "sk-json").json()["error"]["message"]


def test_completion_tokens_from_the_streamed_usage_chunk(token_gw: str) -> None:
    streamed = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    r = _post(token_gw, "sk-sse", streamed)
    assert r.status_code == 200 and b'"completion_tokens":7' in r.content  # 7 > 5 in one go
    for _ in range(20):  # the count lands when the exchange finishes, just after the last byte
        if _post(token_gw, "sk-sse").status_code == 429:
            break
        time.sleep(0.05)
    else:
        pytest.fail("streamed usage was not counted")


def test_streams_without_usage_are_not_counted_nor_reshaped(token_gw: str) -> None:
    for _ in range(2):  # 2 x (2 stub chunks... and a limit of 5 tokens): not refused, so not counted
        r = _post(token_gw, "sk-nousage", {**CHAT, "stream": True})
        assert r.status_code == 200 and b'"usage"' not in r.content


SLOW = {**CHAT, "stub": {"sleep": 1.5}}
"""A request the stub holds for 1.5 s (the gateways below wait up to 10 s for an answer)."""


def _while_held(stub: StubUpstream, url: str, key: str) -> threading.Thread:
    """Start SLOW through `url` in a thread; return once the stub holds it (so its slot is taken)."""
    slow = threading.Thread(target=_post, args=(url, key, SLOW))
    slow.start()
    deadline = time.monotonic() + 10
    while not stub.seen and time.monotonic() < deadline:
        time.sleep(0.01)
    return slow


@pytest.fixture(scope="module")
def one_at_a_time_gw(stub_url: str) -> Iterator[str]:
    settings = gateway_settings(stub_url, api_keys=_keys("sk-c"), concurrent_requests=1, read_timeout=10)
    with serve_in_thread(create_app(settings)) as url:
        yield url


def test_concurrent_requests_limit_and_release(one_at_a_time_gw: str, stub: StubUpstream) -> None:
    slow = _while_held(stub, one_at_a_time_gw, "sk-c")
    _assert_429(_post(one_at_a_time_gw, "sk-c"), 1)
    slow.join()
    assert _post(one_at_a_time_gw, "sk-c").status_code == 200


def test_a_client_leaving_mid_stream_frees_its_slot(one_at_a_time_gw: str) -> None:
    body = {**CHAT, "stream": True, "stub": {"repeat": 40}}
    with httpx.stream(
        "POST", f"{one_at_a_time_gw}/v1/chat/completions", json=body, headers={"authorization": "Bearer sk-c"}
    ) as r:
        pieces = r.iter_raw()  # kept: dropping the iterator would close the connection already
        next(pieces)
        _assert_429(_post(one_at_a_time_gw, "sk-c"), 1)
    for _ in range(40):
        if (status := _post(one_at_a_time_gw, "sk-c").status_code) == 200:
            break
        time.sleep(0.05)
    assert status == 200


@pytest.fixture
def replicas(stub_url: str, redis_url: str) -> Iterator[tuple[str, str, str]]:
    """Two gateways sharing limits through one real Redis, and a key no other test uses."""
    key = f"sk-{uuid.uuid4().hex}"
    settings = gateway_settings(
        stub_url,
        api_keys=_keys(key),
        requests_per_minute=4,
        concurrent_requests=1,
        limit_window_s=LONG,
        limits_backend="redis",
        redis_url=redis_url,
        read_timeout=10,
    )
    with serve_in_thread(create_app(settings)) as a, serve_in_thread(create_app(settings)) as b:
        yield a, b, key


def test_two_replicas_share_request_and_concurrency_limits_through_redis(
    replicas: tuple[str, str, str], stub: StubUpstream
) -> None:
    a, b, key = replicas
    slow = _while_held(stub, a, key)
    _assert_429(_post(b, key), 1)  # the slot is held on the other replica
    slow.join()
    # 1 request so far (the refused one took nothing): 3 more are allowed across both, then none.
    assert [_post(u, key).status_code for u in (b, a, b)] == [200, 200, 200]
    _assert_429(_post(a, key), LONG)
    _assert_429(_post(b, key), LONG)
