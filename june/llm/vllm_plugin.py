"""A vLLM general plugin (entry point `vllm.general_plugins`, loaded in every vLLM process): shortens
how long vLLM's worker busy-waits for its next step once it has none.

vLLM's multiprocess executor hands each step to the worker through a shared-memory queue whose
reader spins (`sched_yield` in a loop) for `busy_loop_s` = 1 s after every read before it sleeps
on a socket (vllm/distributed/device_communicators/shm_broadcast.py, `SpinCondition`). On a GPU
host that costs an idle core; on june's CPU box it takes a core from Kokoro for a second after
every reply, or after a stream june closes on purpose (measured: a short clause's first audio
0.38 s alone, 0.62 s in the second after an LLM stream was closed). `june.llm.server` sets
`JUNE_LLM_CPU_IDLE_SPIN_MS` for CPU presets; without it the plugin changes nothing.

A reader that sleeps sooner may sleep through a notification sent before its socket had joined
(zmq's slow joiner, at start-up): vLLM's 1 s of spinning covered that. So a capped reader never
sleeps longer than POLL_MS before it looks at the queue again (a start-up that hung for 10 min
without this bound).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

ENV = "JUNE_LLM_CPU_IDLE_SPIN_MS"
POLL_MS = 50
"""Longest sleep of a capped reader between looks at its queue (ms)."""


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

    def capped_wait(self: shm_broadcast.SpinCondition, timeout_ms: int | None = None) -> None:
        if getattr(self, "busy_loop_s", 0) > cap_s:
            self.busy_loop_s = cap_s
        wait(self, POLL_MS if timeout_ms is None else min(timeout_ms, POLL_MS))

    capped_wait.june_cap_s = cap_s  # type: ignore[attr-defined]  # the mark `register` looks for, to patch once
    spin.wait = capped_wait  # type: ignore[method-assign]  # patching vLLM's method is this plugin's purpose
