"""`core.procs`: ports the kernel will not hand to anyone else in the meantime, and the one
readiness poller (`june up`, the benchmarks and the test fixtures wait through it)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.procs import Child, ServiceFailed, free_port, poll_ready, wait_ready


def test_free_ports_are_bindable_distinct_and_outside_the_ephemeral_range() -> None:
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = [free_port() for _ in range(50)]

    assert len(set(ports)) == len(ports)
    assert not [p for p in ports if low <= p <= high]  # where outgoing connections and bind(0) draw from
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))


def _child(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code])


def test_the_poller_waits_until_each_child_answers_200() -> None:
    # Two real servers, ready at different times: each one's ready_after is its own.
    ports = [free_port(), free_port()]
    serve = (
        "import time, http.server; time.sleep({delay}); "
        "http.server.test(http.server.SimpleHTTPRequestHandler, port={port}, bind='127.0.0.1')"
    )
    procs = [_child(serve.format(delay=delay, port=port)) for delay, port in zip((0.0, 1.5), ports, strict=True)]
    try:
        pairs = enumerate(zip(ports, procs, strict=True))
        children = [Child(f"c{i}", f"http://127.0.0.1:{port}/", 30, proc) for i, (port, proc) in pairs]
        poll_ready(children, poll_s=0.1)
        first, second = (c.ready_after for c in children)
        assert first is not None and second is not None and second >= 1.5 > first
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_the_poller_reports_a_child_that_exits_before_it_is_ready() -> None:
    proc = _child("import sys; sys.exit(3)")
    with pytest.raises(ServiceFailed, match=r"^speech exited with code 3 before it was ready: polled http"):
        wait_ready(f"http://127.0.0.1:{free_port()}/ready", timeout=30, proc=proc, name="speech")


def test_the_poller_gives_up_after_the_timeout() -> None:
    proc = _child("import time; time.sleep(30)")
    try:
        start = time.monotonic()
        with pytest.raises(ServiceFailed, match=r"^llm was not ready after 1 s \(not answering 200 yet\)"):
            wait_ready(f"http://127.0.0.1:{free_port()}/health", timeout=1, proc=proc, name="llm")
        assert time.monotonic() - start < 10
    finally:
        proc.kill()
        proc.wait()
