"""Admission and scheduling of requests onto model slots, by request class (`core.priority`).

A request (a transcription: decode + every Whisper segment; a speech: every sentence) holds one slot
while it runs, so under a burst the first arrival finishes in about its solo time instead of every
admitted request sharing the CPU and all finishing together. Waiting requests get a slot by

1. class: live (a /v1/realtime turn) before interactive (bots, the API) before batch;
2. within a class, a speech request (`FINISHING`: the last stage of a voice reply whose message was
   already heard and answered) before a transcription (`NEW`): under a burst of voice messages each
   reply goes out as soon as it is written, instead of queueing behind every later message;
3. arrival.

Live work never waits behind other work:
- `live_slots` more slots serve only live requests, so a live turn starts at once even while a
  batch transcription holds the normal slot (they then share the cores; `speech.lanes` runs the
  other one at a lower OS priority);
- a running request of a lower class gives its slot up at its next unit boundary (between Whisper
  segments, between sentences: `Ticket.checkpoint`) when a higher class waits for one, and waits
  again with its original arrival, so it goes on as soon as that work is done. Whisper decodes a
  30-second window of speech per model call (several segments at once), so a transcription gives
  way at most one window's compute later; a 20 s clip is one window, and the live slot is what
  keeps a live turn from waiting behind it;
- with the live window file (`core.live_signal`, which the gateway on this host writes while a live
  turn waits for its answer: its transcription, then its response until the first audio), non-live
  requests start no new unit while it is open: a transcription waits before its first segment, a
  speech before its next sentence, keeping their slots, so the live turn has the cores
  (vLLM pauses its other work for the same window, and `speech.worker` stops the process that runs
  the non-live model calls already in flight).

No starvation: within a class it is first come, first served, and a batch request that has waited
`aging_s` seconds ranks as interactive (ahead of every interactive request that arrived after it)
until it is served; a request back on a slot always does at least one unit before it can be
preempted again. Live work is not aged past: the gateway admits only as many live sessions as the
box serves in time.

Each class admits at most `slots + max_queue` requests (live: `+ live_slots`), each class counted
on its own, so a burst of batch work cannot fill the queue for the bots; the next gets 503 with a
Retry-After estimated from the real queue: the requests of its class and above × their recent mean
service time / slots.

A request whose client has gone is cancelled by its handler: cancelled while waiting, it leaves the
queue; cancelled while running, it stops after the model call in progress (worker threads cannot be
interrupted), and its slot passes on.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Literal

import anyio

from core.live_signal import LiveSignal
from core.priority import CLASSES, DEFAULT_CLASS, RANK, RequestClass
from core.web import OpenAIError
from speech.metrics import SpeechMetrics

__all__ = ["FINISHING", "NEW", "Busy", "Scheduler", "Ticket", "default_slots"]

log = logging.getLogger(__name__)

Priority = Literal[0, 1]
FINISHING: Priority = 0
"""A request that completes a reply already under way (speech): served first within its class."""
NEW: Priority = 1
"""A request that starts new work (a transcription)."""

SlotKind = Literal["normal", "live"]


LIVE_WINDOW_POLL_S = 0.02
"""How often non-live work waiting out the live window looks at it again (seconds)."""


def default_slots(device: str) -> int:
    """Model slots for `device` when none are configured: on a GPU 2 (one request's CPU work, such
    as decoding and beam bookkeeping, overlaps another's GPU work); on CPU one per 4 cores, at least
    1: CTranslate2 and onnxruntime already use several threads per call, so more concurrent calls on
    few cores only stretch every request."""
    if device.startswith("cuda"):
        return 2
    return max(1, (os.cpu_count() or 1) // 4)


class Busy(OpenAIError):
    """The queue of a class is full: 503, code "server_busy", Retry-After `retry_after` seconds."""

    def __init__(self, retry_after: int, cls: RequestClass = DEFAULT_CLASS) -> None:
        super().__init__(
            503,
            f"The speech service is busy with {cls} requests; retry in about {retry_after} s.",
            code="server_busy",
            headers={"Retry-After": str(retry_after)},
        )


@dataclass(eq=False)
class Ticket:
    """One admitted request of class `cls`. `await start()` waits for a slot and holds it;
    `await checkpoint()` (between units of work) may give it up to higher-class work and take it
    back; `release()` (idempotent) frees the slot and the queue place. Usable as a context manager.

    Times are `time.monotonic()` seconds; `waited_s` / `served_s` add up every wait for a slot and
    every hold of one.
    """

    scheduler: Scheduler
    cls: RequestClass = DEFAULT_CLASS
    priority: Priority = NEW
    arrival: int = 0
    """Admission order: its place among equals, kept when it is preempted."""
    admitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    """When it took its current slot; None while it holds none."""
    slot: SlotKind | None = None
    waited_s: float = 0.0
    served_s: float = 0.0
    preemptions: int = 0
    released: bool = False
    _waiting_since: float | None = field(default=None, init=False, repr=False)
    _granted: anyio.Event | None = field(default=None, init=False, repr=False)

    @property
    def ever_started(self) -> bool:
        """Whether it has held a slot at some point."""
        return self.started_at is not None or self.served_s > 0

    def _end_wait(self, now: float) -> None:
        """Stop the wait for a slot (granted, cancelled or released) at `now`: added to `waited_s`."""
        if self._waiting_since is not None:
            self.waited_s += now - self._waiting_since
            self._waiting_since = None

    async def start(self) -> None:
        """Wait for a model slot (see the module doc for the order), then, for a non-live request, for
        the live window to close; a no-op when already holding one. Cancelling the wait (the client
        went away) takes the request out of the queue."""
        if self.started_at is None and not self.released:
            await self.scheduler.acquire(self)
            await self.scheduler.live_window_closed(self)

    async def checkpoint(self) -> bool:
        """Between two units of work: when a request of a higher class waits for a slot, give this one
        up and wait for it again (same arrival); True if it did. Live requests never give way. A
        non-live request also waits here while the live window is open (keeping its slot)."""
        if self.started_at is None or self.released:
            return False
        await self.scheduler.live_window_closed(self)
        if not self.scheduler.should_yield(self):
            return False
        self.preemptions += 1
        self.scheduler.metrics.preempted.labels(self.cls).inc()
        log.info("%s request gives its slot to higher-class work (preemption %d)", self.cls, self.preemptions)
        await self.scheduler.requeue(self)
        return True

    def release(self) -> None:
        """Free the slot (if held) and the queue place; records the wait and service times. Idempotent."""
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
    """`slots` model slots for any class plus `live_slots` for live requests only; waiting requests
    by class (batch aged to interactive after `aging_s` seconds of waiting), then priority, then
    arrival; each class admits at most `slots + max_queue` requests (live: `+ live_slots`).

    `initial_service_s` is the service time assumed for Retry-After until requests of a class have
    finished; after that, an exponentially weighted mean of that class's recent service times (slot
    held, in seconds). Async-only: use from the event loop.
    """

    def __init__(
        self,
        slots: int,
        max_queue: int,
        initial_service_s: float = 2.0,
        *,
        live_slots: int = 1,
        aging_s: float = 30.0,
        metrics: SpeechMetrics | None = None,
        live_signal: LiveSignal | None = None,
    ) -> None:
        self.metrics = metrics or SpeechMetrics()
        self.live_signal = live_signal
        """The live window file (core.live_signal) written by the gateway on this host; None: not read."""
        self.slots = slots
        self.live_slots = live_slots
        self.max_queue = max_queue
        self.aging_s = aging_s
        self.mean_service_s: dict[RequestClass, float] = dict.fromkeys(CLASSES, initial_service_s)
        self.held: dict[SlotKind, int] = {"normal": 0, "live": 0}
        """Slots held right now, by kind."""
        self.admitted: dict[RequestClass, int] = dict.fromkeys(CLASSES, 0)
        self._waiting: list[Ticket] = []
        self._arrivals = 0
        self.metrics.slots.set(slots)

    @property
    def pending(self) -> int:
        """Requests admitted and not yet finished (waiting for or holding a slot), every class."""
        return sum(self.admitted.values())

    @property
    def in_use(self) -> int:
        """Slots held right now, both kinds."""
        return self.held["normal"] + self.held["live"]

    def capacity(self, cls: RequestClass) -> int:
        """Requests of `cls` admitted at most (waiting or running)."""
        return self.slots + self.max_queue + (self.live_slots if cls == "live" else 0)

    def admit(self, cls: RequestClass = DEFAULT_CLASS, priority: Priority = NEW) -> Ticket:
        """A place in the queue, or Busy (with Retry-After) when `capacity(cls)` requests of `cls` are in."""
        if self.admitted[cls] >= self.capacity(cls):
            self.metrics.rejected.labels(cls).inc()
            raise Busy(self.retry_after(cls), cls)
        self.admitted[cls] += 1
        self._arrivals += 1
        self.metrics.admitted.labels(cls).inc()
        self.metrics.queue_depth.set(self.pending)
        return Ticket(self, cls, priority, self._arrivals)

    def retry_after(self, cls: RequestClass = DEFAULT_CLASS) -> int:
        """Seconds until a place is likely free for `cls`: the requests of `cls` and higher classes
        in × their class's mean service time / slots, at least 1."""
        ahead = sum(self.admitted[c] * self.mean_service_s[c] for c in CLASSES if RANK[c] <= RANK[cls])
        return max(1, math.ceil(ahead / self.slots))

    def _rank(self, ticket: Ticket, now: float) -> int:
        """`ticket`'s class rank, a waiting batch request aged to interactive after `aging_s` of waiting."""
        rank = RANK[ticket.cls]
        since = ticket._waiting_since
        if ticket.cls == "batch" and since is not None and now - since >= self.aging_s:
            return RANK["interactive"]
        return rank

    def _key(self, ticket: Ticket, now: float) -> tuple[int, int, int]:
        return self._rank(ticket, now), ticket.priority, ticket.arrival

    def _grant(self, ticket: Ticket, kind: SlotKind) -> None:
        now = time.monotonic()
        self.held[kind] += 1
        ticket.slot = kind
        ticket.started_at = now
        ticket._end_wait(now)

    def _free(self, ticket: Ticket) -> None:
        """`ticket` gives its slot back (accounting only; `_dispatch` hands it on)."""
        assert ticket.slot is not None and ticket.started_at is not None
        self.held[ticket.slot] -= 1
        ticket.served_s += time.monotonic() - ticket.started_at
        ticket.slot = None
        ticket.started_at = None

    def _dispatch(self) -> None:
        """Give free slots to the first waiters: a live one takes a live slot first, then a normal one."""
        now = time.monotonic()
        while self._waiting:
            first = min(self._waiting, key=lambda t: self._key(t, now))
            if first.cls == "live" and self.held["live"] < self.live_slots:
                kind: SlotKind = "live"
            elif self.held["normal"] < self.slots:
                kind = "normal"
            else:
                return
            self._waiting.remove(first)
            self._grant(first, kind)
            assert first._granted is not None
            first._granted.set()

    async def acquire(self, ticket: Ticket) -> None:
        """Take a slot for `ticket`, waiting behind requests that go first (see the module doc)."""
        ticket._waiting_since = time.monotonic()
        ticket._granted = granted = anyio.Event()
        self._waiting.append(ticket)
        self._dispatch()
        try:
            await granted.wait()
        except BaseException:
            if granted.is_set():  # granted just as it was cancelled: the slot goes on
                self._free(ticket)
            else:
                self._waiting.remove(ticket)
                ticket._end_wait(time.monotonic())
            self._dispatch()
            raise

    async def live_window_closed(self, ticket: Ticket) -> None:
        """Return once the live window is closed (at once for a live `ticket` or without a window file):
        while a live turn waits for its answer, non-live work starts no new unit (a segment, a
        sentence), so the cores go to the live turn. The window closes by its deadline at the latest."""
        if self.live_signal is None or ticket.cls == "live":
            return
        while (left := self.live_signal.remaining()) > 0:  # noqa: ASYNC110 - another process writes the file: polled
            await anyio.sleep(min(left, LIVE_WINDOW_POLL_S))

    def should_yield(self, ticket: Ticket) -> bool:
        """Whether a request of a higher class than running `ticket` waits for the normal slot it holds
        (its own class: aging orders the queue but does not preempt, so a class stays first come,
        first served)."""
        if ticket.slot != "normal" or ticket.cls == "live":
            return False
        rank = RANK[ticket.cls]
        return any(RANK[t.cls] < rank for t in self._waiting)

    async def requeue(self, ticket: Ticket) -> None:
        """`ticket` gives its slot to the first waiter and waits for one again with its original place."""
        self._free(ticket)
        await self.acquire(ticket)

    def finished(self, ticket: Ticket) -> None:
        """Account for `ticket` leaving: its slot (if it held one) goes to the first waiter; its wait
        and service times go to the metrics and the class's mean service time."""
        self.admitted[ticket.cls] -= 1
        self.metrics.queue_depth.set(self.pending)
        if ticket._waiting_since is not None:  # released by its handler while waiting (normally cancelled first)
            if ticket in self._waiting:
                self._waiting.remove(ticket)
            ticket._end_wait(time.monotonic())
        if ticket.started_at is not None:
            self._free(ticket)
            self._dispatch()
        self.metrics.queue_wait.labels(ticket.cls).observe(ticket.waited_s)
        if ticket.ever_started:
            self.metrics.service.labels(ticket.cls).observe(ticket.served_s)
            mean = self.mean_service_s[ticket.cls]
            self.mean_service_s[ticket.cls] = 0.7 * mean + 0.3 * ticket.served_s
