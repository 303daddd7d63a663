"""Child services: a free port, the URL that reaches one, waiting until they are ready (one
readiness poller), and running one for a while; used by `june up`, the benchmarks and the tests'
server fixtures."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
import port_for


class ServiceFailed(RuntimeError):
    """A child service exited, or was not ready in time; the message says which and why."""


class Starting(Protocol):
    """A child service as the readiness poller sees it (june.stack's `Service` is one)."""

    name: str
    ready_url: str
    """Answers 200 once the service is ready."""
    ready_timeout: float
    """Seconds from `started` after which it counts as failed."""
    started: float
    """time.monotonic() when the child was spawned."""
    ready_after: float | None
    """Set by the poller: seconds from `started` until `ready_url` answered 200."""
    proc: subprocess.Popen | None

    @property
    def phase(self) -> str:
        """What it is doing now, for a timeout's message ("loading weights", "GET … answered 503")."""
        ...

    def why(self) -> str:
        """Its own last word on a failure, for the message (its last error line, or the URL polled)."""
        ...


def poll_ready(
    children: Sequence[Starting],
    *,
    poll_s: float = 0.5,
    timeout: float = 2.0,
    on_poll: Callable[[], None] | None = None,
) -> None:
    """Poll every child's `ready_url` until each answers 200, setting its `ready_after`.

    Every child is polled once a round (`timeout` seconds per request), then `on_poll()` runs (a
    live display), then a pause of `poll_s` seconds. Raises ServiceFailed as soon as one exits
    ("NAME exited with code N before it was ready: WHY") or outlasts its `ready_timeout`
    ("NAME was not ready after T s (PHASE): WHY").
    """
    pending = list(children)
    with httpx.Client(timeout=timeout) as http:
        while pending:
            for child in list(pending):
                waited = time.monotonic() - child.started
                if child.proc is not None and child.proc.poll() is not None:
                    code = child.proc.returncode
                    raise ServiceFailed(f"{child.name} exited with code {code} before it was ready: {child.why()}")
                try:
                    if http.get(child.ready_url).status_code == 200:
                        child.ready_after = waited
                        pending.remove(child)
                        continue
                except httpx.HTTPError:
                    pass
                if waited > child.ready_timeout:
                    limit = f"{child.ready_timeout:.0f} s ({child.phase})"
                    raise ServiceFailed(f"{child.name} was not ready after {limit}: {child.why()}")
            if on_poll is not None:
                on_poll()
            if pending:
                time.sleep(poll_s)


@dataclass
class Child:
    """A child polled by URL alone (what `wait_ready` polls): its phase and last word name the URL."""

    name: str
    ready_url: str
    ready_timeout: float
    proc: subprocess.Popen | None
    started: float = field(default_factory=time.monotonic)
    ready_after: float | None = None
    phase: str = "not answering 200 yet"

    def why(self) -> str:
        return f"polled {self.ready_url}"


def wait_ready(url: str, *, timeout: float, proc: subprocess.Popen | None = None, name: str = "service") -> float:
    """Poll `url` until it answers 200 (`poll_ready` for one child); returns the seconds waited.

    Raises ServiceFailed when `proc` exits first (with its exit code) or after `timeout` seconds.
    """
    child = Child(name, url, timeout, proc)
    poll_ready([child])
    assert child.ready_after is not None
    return child.ready_after


def local_url(host: str, port: int) -> str:
    """http://HOST:PORT as a client on this machine reaches a server bound to `host` (0.0.0.0 → 127.0.0.1)."""
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"


_handed_out: set[int] = set()


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 for a child to listen on; never the same one twice per process.

    Chosen by port-for among IANA-unassigned ports outside the kernel's ephemeral range
    (`/proc/sys/net/ipv4/ip_local_port_range`). A port from `bind(("127.0.0.1", 0))` lies inside
    that range, where the kernel may give it to any outgoing connection or other `bind(0)` before
    the child binds it: CI once failed on "address already in use" that way. Raises
    port_for.PortForException when none is free.
    """
    port = port_for.select_random(exclude_ports=_handed_out)
    _handed_out.add(port)
    return port


@contextmanager
def running(
    argv: list[str],
    *,
    ready_url: str,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    timeout: float = 120,
    name: str = "service",
    cpus: set[int] | None = None,
) -> Iterator[subprocess.Popen]:
    """`argv` as a child process (our environment plus `env`; output to `log`, else dropped),
    yielded once `ready_url` answers 200, and stopped afterwards: SIGTERM, then SIGKILL after 30 s.

    `cpus`: the only CPUs it may run on (Linux affinity, set before it starts).
    Raises ServiceFailed as `wait_ready` does (the child is stopped first).
    """
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    with open(log, "wb") if log is not None else open(os.devnull, "wb") as out:
        proc = subprocess.Popen(
            argv, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT, preexec_fn=pin
        )
        try:
            wait_ready(ready_url, timeout=timeout, proc=proc, name=name)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
