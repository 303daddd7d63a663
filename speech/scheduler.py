"""Admission and scheduling of whole requests onto model slots.

A request (a transcription: decode + every Whisper segment; a speech: every sentence) holds one slot
from its start to its end, so under a burst the first arrival finishes in about its solo time
instead of every admitted request sharing the CPU and all finishing together. Waiting requests get
a slot in arrival order within their class, and a speech request (`FINISHING`: the last stage of a
voice reply whose message was already heard and answered) before a transcription (`NEW`: the first
stage of a message): under a burst of voice messages each reply then goes out as soon as it is
written, instead of queueing behind every later message's transcription, and the first user is
answered in about a solo round trip. Each class admits at most `slots + max_queue` requests; the
next gets 503 with a Retry-After estimated from the real queue: requests ahead × recent mean
service time / slots.

A request whose client has gone is cancelled by its handler: cancelled while waiting, it leaves the
queue; cancelled while running, it stops after the model call in progress (worker threads cannot be
interrupted), and its slot passes on.
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
import time
from dataclasses import dataclass, field
from typing import Literal

import anyio

from core.web import OpenAIError
from speech.metrics import SpeechMetrics

__all__ = ["FINISHING", "NEW", "Busy", "Scheduler", "Ticket", "default_slots"]

Priority = Literal[0, 1]
FINISHING: Priority = 0
"""A request that completes a reply already under way (speech): served first."""
NEW: Priority = 1
"""A request that starts new work (a transcription)."""


def default_slots(device: str) -> int:
    """Model slots for `device` when none are configured: on a GPU 2 (one request's CPU work, such
    as decoding and beam bookkeeping, overlaps another's GPU work); on CPU one per 4 cores, at least
    1: CTranslate2 and onnxruntime already use several threads per call, so more concurrent calls on
    few cores only stretch every request."""
    if device.startswith("cuda"):
        return 2
    return max(1, (os.cpu_count() or 1) // 4)


class Busy(OpenAIError):
    """The queue is full: 503, code "server_busy", Retry-After `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            503,
            f"The speech service is busy; retry in about {retry_after} s.",
            code="server_busy",
            headers={"Retry-After": str(retry_after)},
        )


@dataclass(eq=False)  # hashable by identity: the CapacityLimiter's borrower
class Ticket:
    """One admitted request. `await start()` waits for a slot (arrival order) and holds it;
    `release()` (idempotent) frees the slot and the queue place. Usable as a context manager."""

    scheduler: Scheduler
    priority: Priority = NEW
    admitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    released: bool = False

    async def start(self) -> None:
        """Wait for a model slot (FINISHING before NEW, each in arrival order); a no-op when already
        holding one. Cancelling the wait (the client went away) takes the request out of the queue."""
        if self.started_at is None and not self.released:
            await self.scheduler.acquire(self)
            self.started_at = time.monotonic()

    def release(self) -> None:
        """Free the slot (if held) and the queue place; records the service time. Idempotent."""
        if not self.released:
            self.released = True
            self.scheduler.finished(self)

    def abandon(self) -> None:
        """`release` for a request whose client went away (counted by stage in the metrics)."""
        if not self.released:
            self.scheduler.metrics.abandoned.labels("queued" if self.started_at is None else "running").inc()
        self.release()

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


class Scheduler:
    """`slots` model slots; waiting requests by priority, then arrival; at most `max_queue` more
    requests of each priority waiting.

    `initial_service_s` is the service time assumed for Retry-After until requests have finished;
    after that, an exponentially weighted mean of recent service times (slot held, in seconds).
    Async-only: use from the event loop.
    """

    def __init__(
        self, slots: int, max_queue: int, initial_service_s: float = 2.0, *, metrics: SpeechMetrics | None = None
    ) -> None:
        self.metrics = metrics or SpeechMetrics()
        self.slots = slots
        self.max_queue = max_queue
        self.mean_service_s = initial_service_s
        self.pending = 0
        self.in_use = 0
        """Slots held right now."""
        self._admitted: dict[Priority, int] = {FINISHING: 0, NEW: 0}
        self._waiting: list[
            tuple[Priority, int, anyio.Event, Ticket]
        ] = []  # heap: (priority, arrival, granted, ticket)
        self._arrivals = itertools.count()
        self.metrics.slots.set(slots)

    def admit(self, priority: Priority = NEW) -> Ticket:
        """A place in the queue, or Busy (with Retry-After) when `slots + max_queue` requests of this
        priority are in."""
        if self._admitted[priority] >= self.slots + self.max_queue:
            self.metrics.rejected.inc()
            raise Busy(self.retry_after())
        self._admitted[priority] += 1
        self.pending += 1
        self.metrics.queue_depth.set(self.pending)
        return Ticket(self, priority)

    def retry_after(self) -> int:
        """Seconds until a place is likely free: requests in × mean service time / slots, at least 1."""
        return max(1, math.ceil(self.pending * self.mean_service_s / self.slots))

    async def acquire(self, ticket: Ticket) -> None:
        """Take a slot for `ticket`, waiting behind requests of its priority and above that came first."""
        if self.in_use < self.slots and not self._waiting:
            self.in_use += 1
            return
        entry = (ticket.priority, next(self._arrivals), anyio.Event(), ticket)
        heapq.heappush(self._waiting, entry)
        try:
            await entry[2].wait()
        except BaseException:
            if entry[2].is_set():  # granted just as it was cancelled: the slot goes on
                self._hand_on()
            else:
                self._waiting.remove(entry)
                heapq.heapify(self._waiting)
            raise

    def _hand_on(self) -> None:
        """A held slot was freed: give it to the first waiter (it stays in use), else mark it free."""
        if self._waiting:
            heapq.heappop(self._waiting)[2].set()
        else:
            self.in_use -= 1

    def finished(self, ticket: Ticket) -> None:
        """Account for `ticket` leaving: its slot (if it held one) goes to the first waiter."""
        self.pending -= 1
        self._admitted[ticket.priority] -= 1
        self.metrics.queue_depth.set(self.pending)
        if ticket.started_at is not None:
            self._hand_on()
            served = time.monotonic() - ticket.started_at
            self.mean_service_s = 0.7 * self.mean_service_s + 0.3 * served
