"""`Lanes`: which threads run a request's blocking model calls, by request class.

The scheduler orders requests, but a live request on its own slot shares the cores with the
request on the normal slot while both run. So live calls run on anyio's worker threads at the
process's own OS priority, and every other class's calls on a "background" pool whose threads
lowered their priority once, when created (`nice`, e.g. 10: the Linux scheduler then gives a
runnable live thread about 90 % of a contended core). An unprivileged thread cannot raise its
priority again, so the niced threads serve only background work, for the life of the process.

What runs where: decoding, encoding and time-stretching (PyAV) compute in the calling thread. The
model calls of non-live requests (Whisper, its VAD and features included, and TTS) go further, to a
child process at the same lower priority that the live window stops (`speech.worker`): the calling
background thread only waits for them. Without that process (models passed in by a test or host),
they compute on these threads too, and CTranslate2's and onnxruntime's own threads at the priority
of the thread that built them.

Nice weighs threads against the other threads of their autogroup (one per session, where
sched_autogroup_enabled is on) or cgroup: `june up` keeps its services in its own session for that
(june.stack), so the niced threads also yield to vLLM's decode on a CPU box. A speech service
started in a session or container of its own competes as one whole with the others.

Linux only (per-thread nice); elsewhere, or with `nice` 0, everything runs on anyio's threads.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, TypeVarTuple

import anyio.to_thread

from core.priority import RequestClass

__all__ = ["Lanes", "lower_priority"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


def lower_priority(nice: int) -> None:
    """Raise the calling thread's nice value by `nice`, to at most 19 (Linux: nice is per thread, and
    threads it starts afterwards inherit it). Logs a warning when the kernel refuses."""
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as e:  # lowering one's own priority is always allowed; say so if it is not
        log.warning("could not lower the priority of background thread %d: %s", tid, e)


class Lanes:
    """Live calls on anyio's threads; other classes' on up to `workers` threads niced by `nice`
    (0, or not Linux: no background lane, everything on anyio's threads)."""

    def __init__(self, nice: int = 10, workers: int = 4) -> None:
        self.nice = nice if sys.platform.startswith("linux") else 0
        self._pool: ThreadPoolExecutor | None = None
        if self.nice > 0:
            self._pool = ThreadPoolExecutor(
                workers, thread_name_prefix="speech-background", initializer=lower_priority, initargs=(self.nice,)
            )

    @property
    def enabled(self) -> bool:
        """Whether a background lane exists."""
        return self._pool is not None

    def background(self, cls: RequestClass) -> bool:
        """Whether work of `cls` runs on the background lane."""
        return self._pool is not None and cls != "live"

    async def run(self, cls: RequestClass, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """`fn(*args)` on `cls`'s lane; cancelling waits for it to finish (as anyio.to_thread.run_sync)."""
        if not self.background(cls):
            return await anyio.to_thread.run_sync(fn, *args)
        pool = self._pool
        assert pool is not None
        # Submitted from the anyio thread, not before it: anyio may raise a pending cancellation
        # before its thread starts, and `fn` must then not run on, unawaited (a generator's cleanup
        # would free an encoder that `fn` still uses).
        return await anyio.to_thread.run_sync(lambda: pool.submit(fn, *args).result())

    def close(self) -> None:
        """Stop the background threads once their calls end (does not wait)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
