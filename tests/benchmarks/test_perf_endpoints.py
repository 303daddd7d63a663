"""The stack benchmarks talk, without options, to the gateway `june up` serves (its JUNE_GATEWAY_* settings)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from june.cli import app
from june.stack import plan
from tests.conftest import free_port


class _Refuser(http.server.BaseHTTPRequestHandler):
    """A stand-in gateway that records each request line and answers 503."""

    seen: ClassVar[list[str]] = []

    def _refuse(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _refuse

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def up_gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A server where `june up` would put the gateway on these settings; yields the requests it saw."""
    port = free_port()
    monkeypatch.setenv("JUNE_GATEWAY_PORT", str(port))
    monkeypatch.delenv("JUNE_BOT_BASE_URL", raising=False)
    assert plan(with_bots=False).gateway_url == f"http://127.0.0.1:{port}"
    _Refuser.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Refuser)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield _Refuser.seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "realtime", "--turns", "1", "--barge-ins", "0", "--timeout", "5"],
        ["bench", "pipeline", "--timeout", "5"],
        ["bench", "load", "-n", "1", "--text", "Hello."],
    ],
    ids=["realtime", "pipeline", "load"],
)
def test_a_stack_bench_without_a_url_asks_the_gateway_june_up_serves(up_gateway: list[str], argv: list[str]) -> None:
    result = CliRunner().invoke(app, argv)
    assert result.exit_code != 0  # the stand-in refuses everything
    assert up_gateway and all(line.split()[1].startswith("/v1/") for line in up_gateway), (up_gateway, result.output)
