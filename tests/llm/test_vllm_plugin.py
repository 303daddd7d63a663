"""june's vLLM plugin: vLLM's worker stops busy-waiting soon after its last step (CPU presets only)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.live_signal import LiveSignal
from june.llm.settings import LIVE_SIGNAL_ENV
from june.llm.vllm_plugin import ENV, POLL_MS, WINDOW_CHECK_S, register

shm_broadcast = pytest.importorskip("vllm.distributed.device_communicators.shm_broadcast")


def _reader(polls: list[int | None]) -> SimpleNamespace:
    """What SpinCondition.wait reads of a reader whose last read was just now."""
    poller = SimpleNamespace(poll=lambda timeout: polls.append(timeout) or [])
    return SimpleNamespace(is_reader=True, busy_loop_s=1.0, last_read=time.monotonic(), poller=poller,
                           read_cancel_socket=object(), local_notify_socket=object())  # fmt: skip


@pytest.fixture
def spin(monkeypatch: pytest.MonkeyPatch) -> type:
    monkeypatch.setattr(shm_broadcast.SpinCondition, "wait", shm_broadcast.SpinCondition.wait)  # undone after the test
    return shm_broadcast.SpinCondition


def test_idle_worker_sleeps_on_its_socket_after_the_cap(spin: type, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "20")
    register()
    register()  # loaded once per vLLM process, maybe more: the cap is applied once
    polls: list[int | None] = []
    reader = _reader(polls)
    time.sleep(0.05)  # past the 20 ms cap, well inside vLLM's own 1 s
    spin.wait(reader, timeout_ms=7)
    assert reader.busy_loop_s == pytest.approx(0.02) and polls == [7]  # waited on the socket, no spinning
    spin.wait(reader)  # "until notified" becomes a bounded sleep: a notification lost at start-up
    spin.wait(reader, timeout_ms=60_000)  # cannot leave the worker asleep
    assert polls == [7, POLL_MS, POLL_MS]


def test_without_the_variable_vllm_keeps_its_busy_loop(spin: type, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    register()
    polls: list[int | None] = []
    reader = _reader(polls)
    spin.wait(reader, timeout_ms=7)
    assert reader.busy_loop_s == 1.0 and polls == []  # still inside its 1 s: yielded and returned


@pytest.mark.parametrize("level", ["live", "interactive"])
def test_while_the_live_window_is_open_a_reader_does_not_spin(
    spin: type, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, level: str
) -> None:
    """The paused engine steps an empty batch every few ms; a reader that spun 20 ms after each would
    keep a core from the live turn's transcription (or, at the interactive level, the bots' speech),
    so it sleeps on its socket until the window closes."""
    window = LiveSignal(tmp_path / "live")
    deadline = time.monotonic() + 30
    window.set(deadline) if level == "live" else window.set(None, deadline)
    monkeypatch.setenv(ENV, "20")
    monkeypatch.setenv(LIVE_SIGNAL_ENV, str(window.path))
    register()
    polls: list[int | None] = []
    reader = _reader(polls)  # just read: inside the 20 ms cap
    spin.wait(reader, timeout_ms=7)
    assert polls == [7]  # slept on its socket at once
    window.set(None)
    time.sleep(WINDOW_CHECK_S)
    reader.last_read = time.monotonic()
    spin.wait(reader, timeout_ms=7)
    assert polls == [7] and reader.busy_loop_s == pytest.approx(0.02)  # closed: spins within the cap again
