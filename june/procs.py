"""Waiting for child services to become ready: used by `june up` and by the tests' server fixtures."""

from __future__ import annotations

import subprocess
import time

import httpx


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
