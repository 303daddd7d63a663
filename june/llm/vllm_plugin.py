"""A vLLM general plugin (entry point `vllm.general_plugins`, loaded in every vLLM process): shortens
how long vLLM's worker busy-waits for its next step once it has none.

vLLM's multiprocess executor hands each step to the worker through a shared-memory queue whose
reader spins (`sched_yield` in a loop) for `busy_loop_s` = 1 s after every read before it sleeps
on a socket (vllm/distributed/device_communicators/shm_broadcast.py, `SpinCondition`). On a GPU
host that costs an idle core; on june's CPU box it takes a core from Kokoro for a second after
every reply, or after a stream june closes on purpose (measured: a short clause's first audio
0.38 s alone, 0.62 s in the second after an LLM stream was closed). `june.llm.server` sets
`JUNE_LLM_CPU_IDLE_SPIN_MS` for CPU presets; without it the plugin changes nothing.

While the live window is open (`core.live_signal`: a live turn waits for its answer, and
june's scheduler, june.llm.live_scheduler, runs nothing else), a reader does not spin at all: the
engine then steps an empty batch every few ms, and 20 ms of spinning after each kept a core busy
through the turn's transcription, which runs outside vLLM (measured: STT 0.6 s instead of 0.2 s).
It sleeps on its socket and is woken by the next step's notification instead. The same holds while
the window's second level is open (interactive work in flight: the scheduler then holds batch
requests back, and the bots' speech needs the cores).

A reader that sleeps sooner may sleep through a notification sent before its socket had joined
(zmq's slow joiner, at start-up): vLLM's 1 s of spinning covered that. So a capped reader never
sleeps longer than POLL_MS before it looks at the queue again (a start-up that hung for 10 min
without this bound).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from june.llm.settings import LIVE_SIGNAL_ENV

log = logging.getLogger(__name__)

ENV = "JUNE_LLM_CPU_IDLE_SPIN_MS"
POLL_MS = 50
"""Longest sleep of a capped reader between looks at its queue (ms)."""
WINDOW_CHECK_S = 0.005
"""How often a reader looks at the live window file (seconds): its spin loop calls `wait` far more often."""


def _live_window() -> Callable[[], bool]:
    """A check, at most every WINDOW_CHECK_S, of whether the live window (LIVE_SIGNAL_ENV) is open at
    either level; always False without the variable."""
    from core.live_signal import live_signal_at

    signal = live_signal_at(os.environ.get(LIVE_SIGNAL_ENV))
    if signal is None:
        return lambda: False
    seen = {"at": -WINDOW_CHECK_S, "open": False}

    def is_open() -> bool:
        now = time.monotonic()
        if now - seen["at"] >= WINDOW_CHECK_S:
            seen["at"], seen["open"] = now, any(left > 0 for left in signal.windows(now).values())
        return bool(seen["open"])

    return is_open


def register() -> None:
    """Cap SpinCondition's busy loop at `JUNE_LLM_CPU_IDLE_SPIN_MS` and its sleeps at POLL_MS (when
    the variable is set); idempotent."""
    value = os.environ.get(ENV)
    if value is None:
        return
    try:
        from vllm.distributed.device_communicators import shm_broadcast

        spin = shm_broadcast.SpinCondition
        wait = spin.wait
    except (ImportError, AttributeError) as e:  # another vLLM layout: leave it as it is
        log.warning("june: vLLM's SpinCondition not found (%s); the idle busy loop stays", e)
        return
    if getattr(wait, "june_cap_s", None) is not None:
        return
    cap_s = max(0.0, float(value) / 1000)
    live_window = _live_window()

    def capped_wait(self: shm_broadcast.SpinCondition, timeout_ms: int | None = None) -> None:
        own = vars(self).setdefault("june_busy_loop_s", getattr(self, "busy_loop_s", 0))  # vLLM's, for later
        self.busy_loop_s = 0.0 if live_window() else min(own, cap_s)
        wait(self, POLL_MS if timeout_ms is None else min(timeout_ms, POLL_MS))

    capped_wait.june_cap_s = cap_s  # type: ignore[attr-defined]  # the mark `register` looks for, to patch once
    spin.wait = capped_wait  # type: ignore[method-assign]  # patching vLLM's method is this plugin's purpose
