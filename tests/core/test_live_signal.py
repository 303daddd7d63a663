"""The live window file (core.live_signal): what a reader makes of what the gateway writes, and of a
file that is missing, torn or left over from before a reboot."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.live_signal import MAX_AHEAD_S, LiveSignal


def test_a_deadline_is_read_back_until_it_passes_and_none_closes_the_window(tmp_path: Path) -> None:
    signal = LiveSignal(tmp_path / "live")
    assert signal.remaining() == 0.0  # no file yet: no live turn
    now = time.monotonic()
    signal.set(now + 5.0)
    assert signal.remaining(now) == pytest.approx(5.0, abs=1e-3)
    assert signal.remaining(now + 6.0) == 0.0  # past its deadline: closed without a write
    signal.set(now + 1234.5)
    signal.set(now + 2.0)  # a shorter number after a longer one leaves no digits of the old
    assert signal.remaining(now) == pytest.approx(2.0, abs=1e-3)
    signal.set(None)
    assert signal.remaining(now) == 0.0


@pytest.mark.parametrize("content", [b"", b"garbage\n", b"12.5.6\n", b"nan\n"])
def test_an_unreadable_file_means_no_live_turn(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "live").write_bytes(content)
    assert LiveSignal(tmp_path / "live").remaining() == 0.0


def test_a_deadline_too_far_ahead_is_not_believed(tmp_path: Path) -> None:
    """A file written before a reboot names a deadline on the old monotonic clock, far ahead of the new one."""
    signal = LiveSignal(tmp_path / "live")
    now = time.monotonic()
    signal.set(now + MAX_AHEAD_S + 1)
    assert signal.remaining(now) == 0.0


def test_the_interactive_level_is_read_apart_from_the_live_one(tmp_path: Path) -> None:
    signal = LiveSignal(tmp_path / "live")
    now = time.monotonic()
    signal.set(None, now + 20.0)
    assert signal.windows(now) == {"live": 0.0, "interactive": pytest.approx(20.0, abs=1e-3)}
    assert signal.remaining(now) == 0.0  # the live level is what speech and the live pause read
    signal.set(now + 3.0, now + 20.0)
    assert signal.remaining(now) == pytest.approx(3.0, abs=1e-3)
    assert signal.remaining(now, level="interactive") == pytest.approx(20.0, abs=1e-3)
    signal.set(now + 3.0)
    assert signal.remaining(now, level="interactive") == 0.0


@pytest.mark.parametrize(
    ("content", "live", "interactive"),
    [(b"0\n", 0.0, 0.0), (b"%f\n", 5.0, 0.0), (b"0 garbage\n", 0.0, 0.0), (b"garbage %f\n", 0.0, 5.0)],
)
def test_each_level_is_believed_on_its_own(tmp_path: Path, content: bytes, live: float, interactive: float) -> None:
    """A line with one number (an older gateway) names the live level only; a field that is not a
    number means nothing waits at that level, and does not spoil the other."""
    now = time.monotonic()
    (tmp_path / "live").write_bytes(content.replace(b"%f", b"%f" % (now + 5.0)))
    windows = LiveSignal(tmp_path / "live").windows(now)
    assert windows == {"live": pytest.approx(live, abs=1e-3), "interactive": pytest.approx(interactive, abs=1e-3)}
