"""Several LLM upstreams: least-busy routing, a dead one taken out, put back when it answers again."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from gateway.app import create_app
from tests.conftest import free_port
from tests.gateway.conftest import gateway_settings, serve_in_thread
from tests.gateway.stub_upstream import MODEL, StubUpstream

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


def _chat(gw: str, **stub: object) -> httpx.Response:
    return httpx.post(f"{gw}/v1/chat/completions", json={**CHAT, "stub": stub} if stub else CHAT, timeout=10)


def _hold(gw: str, stubs: tuple[StubUpstream, ...], n: int) -> list[threading.Thread]:
    """Start `n` 1.5 s requests through `gw` one after the other, each once the previous is held by a stub.

    Nothing finishes meanwhile, so least-busy routing must spread them evenly.
    """
    for stub in stubs:
        stub.reset()
    threads = []
    for i in range(n):
        threads.append(threading.Thread(target=_chat, args=(gw,), kwargs={"sleep": 1.5}))
        threads[-1].start()
        assert _wait_for(lambda i=i: sum(len(stub.seen) for stub in stubs) == i + 1)
    return threads


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _up(gw: str, url: str) -> str | None:
    for line in httpx.get(f"{gw}/metrics").text.splitlines():
        if line.startswith("june_gateway_upstream_up{") and f'url="{url}"' in line:
            return line.rsplit(" ", 1)[1]
    return None


def test_least_busy_routing_and_a_dead_upstream_taken_out_and_back() -> None:
    a, b = StubUpstream("a"), StubUpstream("b")
    url_a = f"http://127.0.0.1:{free_port()}"
    port_a = int(url_a.rsplit(":", 1)[1])
    with serve_in_thread(b.app) as url_b:
        settings = gateway_settings(url_b, llm_urls=[url_a, url_b], health_interval_s=0.2, read_timeout=10)
        with serve_in_thread(create_app(settings)) as gw:
            with serve_in_thread(a.app, port=port_a):
                assert _wait_for(lambda: _up(gw, url_a) == "1.0")
                # Least busy: requests that are all still running spread evenly over both.
                held = _hold(gw, (a, b), 4)
                assert (len(a.seen), len(b.seen)) == (2, 2)
                for thread in held:
                    thread.join()

            # a is gone: every request still succeeds on b, and a is marked down.
            assert {_chat(gw).headers["x-upstream"] for _ in range(4)} == {"b"}
            assert _wait_for(lambda: _up(gw, url_a) == "0.0")
            assert httpx.get(f"{gw}/ready").status_code == 200  # one healthy LLM server is enough

            # Restart a on its port: the health check puts it back, and it takes traffic again.
            with serve_in_thread(a.app, port=port_a):
                assert _wait_for(lambda: _up(gw, url_a) == "1.0")
                held = _hold(gw, (a, b), 2)
                assert (len(a.seen), len(b.seen)) == (1, 1), "the restarted upstream got no traffic"
                for thread in held:
                    thread.join()

    # Both gone: a 502 envelope naming the llm upstream.
    settings = gateway_settings(url_b, llm_urls=[url_a, url_b])
    with serve_in_thread(create_app(settings)) as gw:
        r = _chat(gw)
        assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_unavailable"


def test_all_upstreams_down_is_a_502_envelope_and_unready(caplog: pytest.LogCaptureFixture) -> None:
    settings = gateway_settings(
        f"http://127.0.0.1:{free_port()}", llm_urls=[f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    )
    # Litestar's logging config replaces the root handlers (caplog's too): listen on "gateway" itself.
    logging.getLogger("gateway").addHandler(caplog.handler)
    try:
        with serve_in_thread(create_app(settings)) as gw:
            r = _chat(gw)
            assert r.status_code == 502
            assert r.json()["error"]["type"] == "server_error" and "llm upstream" in r.json()["error"]["message"]
            ready = httpx.get(f"{gw}/ready")
            assert ready.status_code == 503
            assert ready.json() == {"status": "unready", "upstreams": {"llm": False, "speech": False}}
    finally:
        logging.getLogger("gateway").removeHandler(caplog.handler)
    # Each server going down is one readable line, not aiohttp's paragraph-long repr.
    down = [r.getMessage() for r in caplog.records if " is down: " in r.getMessage()]
    assert len(down) == 3, down
    for line in down:
        assert "ClientConnectorError: Cannot connect to host 127.0.0.1:" in line and "ConnectionKey" not in line, line
