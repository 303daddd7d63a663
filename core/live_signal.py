"""The live window: a file by which the gateway tells vLLM and speech that a live turn needs the CPU.

On a CPU box every stage shares the same cores, and a generation vLLM has already started (a bot's
reply, a benchmark's completion) keeps both busy while a live turn's transcription, first reply
sentence and first audio wait for them. Priorities order vLLM's queue but do not pause what runs.
So, while a live turn waits for its answer (the gateway's `Admission.hold`: its transcription, from
the pause where the turn may end, and its response until the first audio), the gateway writes a
deadline to this file. Until then june's vLLM scheduler (`june.llm.live_scheduler`) gives no steps
to requests of a lower class (they keep their place and their KV cache and go on where they were),
and the speech service (`speech.scheduler`) starts no new unit of non-live work. The deadline bounds
every pause, so a hold that is never released (a crash) cannot stop other work for longer than the
gateway's `live_hold_s`.

The file holds one line: the deadline on `time.monotonic()`'s clock (CLOCK_MONOTONIC, the same
for every process on a Linux host), in seconds; "0" when no live turn is waiting. Both sides must
run on the same host (`june up` points them at the same file). A reader ignores what it cannot
parse and any deadline further ahead than `MAX_AHEAD_S` (a file left from before a reboot, when the
monotonic clock restarted), so a torn or stale file can only ever mean "no live turn".
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator

__all__ = ["MAX_AHEAD_S", "LiveSignal", "LiveSignalPath", "live_signal_at"]

LiveSignalPath = Annotated[Path | None, BeforeValidator(lambda value: value or None)]
"""A settings field naming the live window file: a path, or None (also from an empty variable)."""

MAX_AHEAD_S = 60.0
"""A deadline further ahead than this (seconds) is not believed: no live turn waits that long."""
_WIDTH = 24
"""Every write is this many bytes, so a reader never sees the tail of a longer earlier line."""


class LiveSignal:
    """The live window file at `path` (module docstring): the gateway `set`s it, vLLM's scheduler and
    the speech service ask `remaining`. Writing creates the file; reading a missing file means no live turn."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def set(self, deadline: float | None) -> None:
        """Announce a live turn until `deadline` (time.monotonic() seconds), or none (None).

        Raises OSError when the file cannot be written (the folder is missing or read-only).
        """
        line = f"{deadline or 0:.6f}".ljust(_WIDTH - 1) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, line.encode(), 0)  # one write of a fixed width: never a half-old line
        finally:
            os.close(fd)

    def remaining(self, now: float | None = None) -> float:
        """Seconds until the announced deadline (`now` defaults to time.monotonic()); 0.0 when no live
        turn waits, the file is missing or unreadable, or the deadline is not believable."""
        try:
            with open(self.path, "rb") as f:
                deadline = float(f.read(_WIDTH))
        except (OSError, ValueError):
            return 0.0
        left = deadline - (time.monotonic() if now is None else now)
        return left if 0.0 < left <= MAX_AHEAD_S else 0.0


def live_signal_at(path: str | os.PathLike[str] | None) -> LiveSignal | None:
    """The live window file at `path`; None when no file is configured (None or "": the window is off)."""
    return LiveSignal(path) if path else None
