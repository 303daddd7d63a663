"""When a request may go upstream, by its class (`core.priority`): live first, batch bounded.

The stages of a CPU box share its cores, so the gateway keeps other work from starting while a
live turn runs, instead of leaving every stage to share the CPU out evenly:

- live goes at once. While a live turn waits for its answer (`Admission.hold`: a realtime turn's
  transcription, also the early one started at a pause where the turn may end, and its response
  until the first audio), interactive and batch requests wait before they start, each at most
  `hold_s` seconds; then they go anyway, so a steady stream of live turns cannot starve them.
  Requests already running go on (the upstreams order their own queues by class too), and so does
  everything once the answer is being heard, as long as the rest of the reply stays ahead of its
  playback: while its audio is less than `playback_lead_s` ahead (RealtimeSettings), the turn
  holds again, until it is twice as far ahead (at most `hold_s` per reply in all).
- With a live window file (`core.live_signal`, set by `june up`), the same hold reaches into
  vLLM and the speech service: while a live turn waits for its answer, at most `hold_s` from each
  hold's start, june's vLLM scheduler gives no steps to lower-class generations already running
  (`june.llm.live_scheduler`) and the speech service starts no new unit of other work, so the live
  transcription, first sentence and first audio get the cores; the paused work then goes on where
  it was.
- The window file's second level: while an interactive request is in flight here (waiting or
  running, each for at most `interactive_hold_s` from its arrival), the gateway announces it, and
  june's vLLM scheduler gives batch generations only a small share of the steps, so the bots'
  transcription and speech, which share the cores with vLLM, are not slowed by a benchmark's
  completions at normal OS priority.
- batch: at most `batch_concurrency` in flight at once (per gateway); `batch_queue` more wait in
  arrival order; beyond that, 503 ``server_busy`` with a Retry-After from the recent batch service
  time.

Every request's wait and service time, admissions and refusals are counted per class
(`gateway.metrics.GatewayMetrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Iterator

from core.live_signal import LiveSignal
from core.priority import RequestClass
from core.web import OpenAIError
from gateway.metrics import GatewayMetrics

__all__ = ["Admission", "LiveHold"]

log = logging.getLogger(__name__)


class LiveHold:
    """One live turn holding other classes back (`Admission.hold`); `release` (idempotent) ends it."""

    def __init__(self, admission: Admission | None, deadline: float = 0.0) -> None:
        self._admission = admission
        self.deadline = deadline
        """When this hold stops pausing other work in vLLM and speech at the latest (time.monotonic())."""

    def release(self) -> None:
        """Let the held requests go (once the turn's answer has started to play, or the turn ended)."""
        admission, self._admission = self._admission, None
        if admission is not None:
            admission._released(self)


class Admission:
    """The gateway's admission by class (module docstring); one per gateway, async-only."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        *,
        hold_s: float = 5.0,
        batch_concurrency: int = 1,
        batch_queue: int = 64,
        initial_batch_s: float = 10.0,
        live_signal: LiveSignal | None = None,
        interactive_hold_s: float = 30.0,
    ) -> None:
        self.metrics = metrics
        self.hold_s = hold_s
        self.interactive_hold_s = interactive_hold_s
        """How long one interactive request keeps batch generations slowed at most (seconds; 0: never)."""
        self.batch_concurrency = batch_concurrency
        self.batch_queue = batch_queue
        self.live_signal = live_signal
        """Where the holds are announced to vLLM and the speech service on this host (None: nowhere)."""
        self._holds: set[LiveHold] = set()
        self._interactive: list[float] = []  # the deadline of each interactive request in flight
        self.batch_running = 0
        self.batch_waiting = 0
        self.mean_batch_s = initial_batch_s
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def live(self) -> int:
        """Holds in force now (`hold`: live turns waiting for their answer)."""
        return len(self._holds)

    def hold(self) -> LiveHold:
        """Hold other classes back until the returned hold's `release` (a live turn waiting for its answer)."""
        hold = LiveHold(self, time.monotonic() + self.hold_s)
        self._holds.add(hold)
        self._announce()
        return hold

    def _released(self, hold: LiveHold) -> None:
        self._holds.discard(hold)
        self._announce()
        self._notify()

    def _announce(self) -> None:
        """Write the latest deadline of the holds in force and of the interactive requests in flight
        to the live window file (0: none)."""
        if self.live_signal is None:
            return
        try:
            self.live_signal.set(
                max((h.deadline for h in self._holds), default=None), max(self._interactive, default=None)
            )
        except OSError as e:  # the turn goes on; only the LLM's other work is not paused for it
            log.warning("cannot write the live window file %s: %s", self.live_signal.path, e)

    def retry_after(self) -> int:
        """Seconds until a batch place is likely free: waiting × mean batch service time / concurrency."""
        return max(1, math.ceil((self.batch_waiting + 1) * self.mean_batch_s / self.batch_concurrency))

    @contextlib.asynccontextmanager
    async def admit(self, request_class: RequestClass) -> AsyncIterator[None]:
        """Wait until a `request_class` request may start, hold its place for the block, count it.

        Raises OpenAIError 503 (code server_busy, Retry-After) when `batch_queue` batch requests
        already wait. A caller cancelled while waiting leaves the queue.
        """
        arrived = time.perf_counter()
        if request_class == "batch" and self.batch_waiting >= self.batch_queue:
            self.metrics.class_refused.labels(request_class).inc()
            retry = self.retry_after()
            raise OpenAIError(
                503,
                f"{self.batch_waiting} batch requests are already waiting; retry in about {retry} s.",
                code="server_busy",
                headers={"Retry-After": str(retry)},
            )
        if request_class == "batch":
            self.batch_waiting += 1
            try:
                await self._wait(arrived, batch=True)
            finally:
                self.batch_waiting -= 1
            self.batch_running += 1
        interactive = request_class == "interactive"
        with self._interactive_in_flight() if interactive else contextlib.nullcontext():
            if interactive:
                await self._wait(arrived, batch=False)
            async with self._served(request_class, arrived):
                yield

    @contextlib.asynccontextmanager
    async def _served(self, request_class: RequestClass, arrived: float) -> AsyncIterator[None]:
        """Count an admitted request (live: at once) and its service time; free its batch place."""
        started = time.perf_counter()
        self.metrics.class_admitted.labels(request_class).inc()
        self.metrics.class_wait.labels(request_class).observe(started - arrived)
        try:
            yield
        finally:
            served = time.perf_counter() - started
            self.metrics.class_service.labels(request_class).observe(served)
            if request_class == "batch":
                self.batch_running -= 1
                self.mean_batch_s = 0.7 * self.mean_batch_s + 0.3 * served
                self._notify()

    @contextlib.contextmanager
    def _interactive_in_flight(self) -> Iterator[None]:
        """Announce an interactive request (the window file's second level) from its arrival until it
        ends, for at most `interactive_hold_s`."""
        if self.interactive_hold_s <= 0:
            yield
            return
        deadline = time.monotonic() + self.interactive_hold_s
        self._interactive.append(deadline)
        self._announce()
        try:
            yield
        finally:
            self._interactive.remove(deadline)
            self._announce()

    async def _wait(self, arrived: float, *, batch: bool) -> None:
        """Return once no live work holds this request back (or it has waited `hold_s`) and, for
        batch, a batch place is free."""
        deadline = arrived + self.hold_s
        while True:
            now = time.perf_counter()
            held = self.live > 0 and now < deadline
            full = batch and self.batch_running >= self.batch_concurrency
            if not held and not full:
                return
            changed = self._changed
            timeout = deadline - now if held else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout)
