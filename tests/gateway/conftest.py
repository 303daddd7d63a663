"""Fixtures for the gateway tests: a stub upstream and real gateways, each served by uvicorn in a thread."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest
import uvicorn
from pydantic import SecretStr

from gateway.app import create_app
from gateway.settings import GatewaySettings
from tests.conftest import free_port
from tests.gateway.stub_upstream import StubUpstream

KEYS = ("sk-june-one", "sk-june-two")
READ_TIMEOUT = 1.0
"""The test gateways' read timeout (s): above the stub's SSE gap, below a slow request's sleep."""


@contextlib.contextmanager
def serve_in_thread(app: object, port: int | None = None) -> Iterator[str]:
    """Serve the ASGI `app` on `port` (default: a free one) of 127.0.0.1 until the block ends; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    for _ in range(500):
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.01)
    if not server.started:
        raise RuntimeError(f"uvicorn on port {port} did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def gateway_settings(upstream: str, **overrides: object) -> GatewaySettings:
    # The stub is not vLLM: bodies reach it byte for byte unless a test turns llm_priority on (test_classes).
    values: dict = {
        "llm_url": upstream, "speech_url": upstream, "connect_timeout": 1.0, "read_timeout": READ_TIMEOUT,
        "llm_priority": False,
    }  # fmt: skip
    return GatewaySettings(**{**values, **overrides})


@pytest.fixture(scope="session")
def stub() -> StubUpstream:
    return StubUpstream()


@pytest.fixture(scope="session")
def stub_url(stub: StubUpstream) -> Iterator[str]:
    with serve_in_thread(stub.app) as url:
        yield url


@pytest.fixture(autouse=True)
def _fresh_stub(stub: StubUpstream) -> None:
    stub.reset()


@pytest.fixture(scope="session")
def gw(stub_url: str) -> Iterator[str]:
    """An open gateway (no keys) in front of the stub."""
    with serve_in_thread(create_app(gateway_settings(stub_url))) as url:
        yield url


@pytest.fixture(scope="session")
def keyed_gw(stub_url: str) -> Iterator[str]:
    """A gateway in front of the stub that wants one of `KEYS`."""
    settings = gateway_settings(stub_url, api_keys=[SecretStr(k) for k in KEYS])
    with serve_in_thread(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="session")
def dead_gw() -> Iterator[str]:
    """A gateway whose upstreams listen nowhere."""
    with serve_in_thread(create_app(gateway_settings(f"http://127.0.0.1:{free_port()}"))) as url:
        yield url
