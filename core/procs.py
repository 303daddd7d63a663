"""Child services: a free port, waiting until one is ready, and running one for a while; used by
`june up`, the benchmarks and the tests' server fixtures."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import port_for


class ServiceFailed(RuntimeError):
    """A child service exited, or was not ready in time; the message says which and why."""


def wait_ready(url: str, *, timeout: float, proc: subprocess.Popen | None = None, name: str = "service") -> float:
    """Poll `url` until it answers 200; returns the seconds waited.

    Raises ServiceFailed when `proc` exits first (with its exit code) or after `timeout` seconds.
    """
    start = time.monotonic()
    while True:
        if proc is not None and proc.poll() is not None:
            raise ServiceFailed(f"{name} exited with code {proc.returncode} before it was ready ({url})")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        if time.monotonic() - start > timeout:
            raise ServiceFailed(f"{name} was not ready after {timeout:.0f} s ({url})")
        time.sleep(0.5)


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
    argv: list[str], *, ready_url: str, env: Mapping[str, str] | None = None, log: Path | None = None,
    timeout: float = 120, name: str = "service", cpus: set[int] | None = None,
) -> Iterator[subprocess.Popen]:
    """`argv` as a child process (our environment plus `env`; output to `log`, else dropped),
    yielded once `ready_url` answers 200, and stopped afterwards: SIGTERM, then SIGKILL after 30 s.

    `cpus`: the only CPUs it may run on (Linux affinity, set before it starts).
    Raises ServiceFailed as `wait_ready` does (the child is stopped first).
    """
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    with open(log, "wb") if log is not None else open(os.devnull, "wb") as out:
        proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT, preexec_fn=pin)
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
