"""The live window: a file by which the gateway tells vLLM and speech that a live turn needs the CPU.

On a CPU box every stage shares the same cores, and a generation vLLM has already started (a bot's
reply, a benchmark's completion) keeps both busy while a live turn's transcription, first reply
sentence and first audio wait for them. Priorities order vLLM's queue but do not pause what runs.
So, while a live turn waits for its answer (the gateway's `Admission.hold`: its transcription, from
the pause where the turn may end, and its response until the first audio), the gateway writes a
deadline to this file. Until then june's vLLM scheduler (`june.llm.live_scheduler`) gives no steps
to requests of a lower class (they keep their place and their KV cache and go on where they were),
and the speech service starts no new unit of non-live work (`speech.scheduler`) and stops the process
that runs the units in flight (`speech.worker`). The deadline bounds
every pause, so a hold that is never released (a crash) cannot stop other work for longer than the
gateway's `live_hold_s`.

A second, lower level of the same window: while interactive work (a bot's voice message, an API
call without a class) is in flight in the gateway, it writes a second deadline, and june's vLLM
scheduler runs batch generations (a benchmark's, the coding agent's) only in a small share of the
time, so the bots' transcription and speech, which run outside vLLM, get the cores (the speech
service reads only the live level: its own queue already orders interactive before batch).

The file holds one line: the live deadline and the interactive one, on `time.monotonic()`'s clock
(CLOCK_MONOTONIC, the same for every process on a Linux host), in seconds; "0" for a level with
nothing waiting. Both sides must run on the same host (`june up` points them at the same file). A
reader ignores what it cannot parse and any deadline further ahead than `MAX_AHEAD_S` (a file left
from before a reboot, when the monotonic clock restarted), so a torn or stale file can only ever
mean "nothing waits"; a line with one number (an older writer) names the live level only.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator

__all__ = ["MAX_AHEAD_S", "Level", "LiveSignal", "LiveSignalPath", "live_signal_at"]

LiveSignalPath = Annotated[Path | None, BeforeValidator(lambda value: value or None)]
"""A settings field naming the live window file: a path, or None (also from an empty variable)."""

MAX_AHEAD_S = 60.0
"""A deadline further ahead than this (seconds) is not believed: no live turn waits that long."""
_WIDTH = 48
"""Every write is this many bytes, so a reader never sees the tail of a longer earlier line."""

Level = Literal["live", "interactive"]
"""Which window: a live turn waiting for its answer, or interactive work in flight (module docstring)."""
_LEVELS: tuple[Level, ...] = ("live", "interactive")


class LiveSignal:
    """The live window file at `path` (module docstring): the gateway `set`s it, vLLM's scheduler and
    the speech service ask `remaining`. Writing creates the file; reading a missing file means no live turn."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def set(self, deadline: float | None, interactive: float | None = None) -> None:
        """Announce a live turn until `deadline` and interactive work until `interactive`
        (time.monotonic() seconds), or none (None).

        Raises OSError when the file cannot be written (the folder is missing or read-only).
        """
        line = f"{deadline or 0:.6f} {interactive or 0:.6f}".ljust(_WIDTH - 1) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, line.encode(), 0)  # one write of a fixed width: never a half-old line
        finally:
            os.close(fd)

    def remaining(self, now: float | None = None, *, level: Level = "live") -> float:
        """Seconds until `level`'s announced deadline (`now` defaults to time.monotonic()); 0.0 when
        nothing of that level waits, the file is missing or unreadable, or the deadline is not believable."""
        return self.windows(now)[level]

    def windows(self, now: float | None = None) -> dict[Level, float]:
        """`remaining` of every level, from one read of the file."""
        now = time.monotonic() if now is None else now
        try:
            with open(self.path, "rb") as f:
                fields = f.read(_WIDTH).split()
        except OSError:
            fields = []
        out: dict[Level, float] = {}
        for i, level in enumerate(_LEVELS):
            try:
                left = float(fields[i]) - now if i < len(fields) else 0.0
            except ValueError:
                left = 0.0
            out[level] = left if 0.0 < left <= MAX_AHEAD_S else 0.0
        return out


def live_signal_at(path: str | os.PathLike[str] | None) -> LiveSignal | None:
    """The live window file at `path`; None when no file is configured (None or "": the window is off)."""
    return LiveSignal(path) if path else None
