"""The scheduler by request class, in process (no server, no model): who gets a slot first, the live
slot, giving way at a unit boundary, aging, and admission per class; and the lanes that run model
calls. Checked by order, never by time.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import anyio
import pytest

from core.live_signal import LiveSignal
from core.priority import RequestClass
from speech.lanes import Lanes
from speech.scheduler import FINISHING, NEW, Busy, Priority, Scheduler, Ticket


async def served_in_order(scheduler: Scheduler, tickets: dict[str, Ticket], holder: Ticket) -> list[str]:
    """Queue `tickets` (in dict order, one by one) behind `holder`, free its slot, and return the
    names in the order they were given a slot (each frees it at once)."""
    order: list[str] = []

    async def serve(name: str) -> None:
        await tickets[name].start()
        order.append(name)
        tickets[name].release()

    async with anyio.create_task_group() as tg:
        for name in tickets:
            tg.start_soon(serve, name)
            await anyio.sleep(0.01)
        holder.release()
    return order


def test_waiters_go_by_class_then_speech_before_transcription_then_arrival() -> None:
    async def main() -> None:
        scheduler = Scheduler(slots=1, max_queue=8, live_slots=0)
        holder = scheduler.admit("batch")
        await holder.start()
        kinds: list[tuple[str, RequestClass, Priority]] = [
            ("batch-stt", "batch", NEW),
            ("batch-speech", "batch", FINISHING),
            ("interactive-stt-1", "interactive", NEW),
            ("interactive-stt-2", "interactive", NEW),
            ("interactive-speech", "interactive", FINISHING),
            ("live-stt", "live", NEW),
        ]
        tickets = {name: scheduler.admit(cls, priority) for name, cls, priority in kinds}
        order = await served_in_order(scheduler, tickets, holder)
        assert order == [
            "live-stt", "interactive-speech", "interactive-stt-1", "interactive-stt-2", "batch-speech", "batch-stt",
        ]  # fmt: skip
        assert scheduler.pending == 0 and scheduler.in_use == 0

    anyio.run(main)


def test_a_live_request_starts_at_once_on_the_live_slot_which_serves_only_live_work() -> None:
    async def main() -> None:
        scheduler = Scheduler(slots=1, max_queue=8, live_slots=1)
        batch = scheduler.admit("batch")
        await batch.start()
        live = scheduler.admit("live")
        with anyio.fail_after(1):
            await live.start()  # the normal slot is held: the live slot takes it
        assert (live.slot, batch.slot) == ("live", "normal") and not scheduler.should_yield(batch)
        interactive = scheduler.admit("interactive")
        started = anyio.Event()

        async def wait_for_a_slot() -> None:
            await interactive.start()
            started.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_for_a_slot)
            await anyio.sleep(0.05)
            live.release()  # a free live slot is not for interactive work
            await anyio.sleep(0.05)
            assert not started.is_set()
            batch.release()
        assert interactive.slot == "normal"
        interactive.release()
        assert scheduler.in_use == 0

    anyio.run(main)


def test_a_running_request_gives_way_only_to_a_higher_class_and_goes_on_first_among_its_own() -> None:
    """checkpoint(): batch yields to a waiting interactive request and takes the slot back before a
    batch request that arrived after it; interactive does not yield to batch; live never yields."""

    async def main() -> None:
        scheduler = Scheduler(slots=1, max_queue=8, live_slots=0)
        running = scheduler.admit("batch")
        await running.start()
        later_batch = scheduler.admit("batch")
        interactive = scheduler.admit("interactive")
        order: list[str] = []

        async def serve(name: str, ticket: Ticket) -> None:
            await ticket.start()
            order.append(name)
            ticket.release()

        async def run_on() -> None:
            assert not await running.checkpoint()  # nobody waits yet
            await anyio.sleep(0.05)  # both have queued meanwhile
            assert await running.checkpoint()  # interactive waits: give way, then come back
            order.append("running resumed")
            running.release()

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_on)
            tg.start_soon(serve, "later batch", later_batch)
            await anyio.sleep(0.01)
            tg.start_soon(serve, "interactive", interactive)
        assert order == ["interactive", "running resumed", "later batch"]
        assert scheduler.metrics.preempted.labels("batch")._value.get() == 1

        holder = scheduler.admit("interactive")
        await holder.start()
        waiting_batch = scheduler.admit("batch")
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiting_batch.start)
            await anyio.sleep(0.01)
            assert not await holder.checkpoint()  # batch is lower: interactive keeps its slot
            holder.release()
        waiting_batch.release()

        live = scheduler.admit("live")
        await live.start()
        queued_live = scheduler.admit("live")
        async with anyio.create_task_group() as tg:
            tg.start_soon(queued_live.start)
            await anyio.sleep(0.01)
            assert not await live.checkpoint()  # nothing is higher than live
            live.release()
        queued_live.release()
        assert scheduler.pending == 0 and scheduler.in_use == 0

    anyio.run(main)


def test_a_batch_request_that_waited_past_the_aging_time_goes_ahead_of_newer_interactive_ones() -> None:
    async def main() -> None:
        scheduler = Scheduler(slots=1, max_queue=8, live_slots=0, aging_s=0.1)
        holder = scheduler.admit("interactive")
        await holder.start()
        tickets = {"batch": scheduler.admit("batch")}
        order: list[str] = []

        async def serve(name: str) -> None:
            await tickets[name].start()
            order.append(name)
            tickets[name].release()

        async with anyio.create_task_group() as tg:
            tg.start_soon(serve, "batch")
            await anyio.sleep(0.01)
            for i in range(3):
                tickets[f"interactive-{i}"] = scheduler.admit("interactive")
                tg.start_soon(serve, f"interactive-{i}")
                await anyio.sleep(0.01)
            await anyio.sleep(0.15)  # the batch request has now waited past aging_s
            tickets["interactive-new"] = scheduler.admit("interactive")
            tg.start_soon(serve, "interactive-new")
            await anyio.sleep(0.01)
            holder.release()
        # Aged, it ranks as interactive and goes by arrival: behind the older interactive ones only.
        assert order == ["batch", "interactive-0", "interactive-1", "interactive-2", "interactive-new"]

    anyio.run(main)


def test_each_class_has_its_own_admission_bound_and_retry_after() -> None:
    async def main() -> None:
        scheduler = Scheduler(slots=1, max_queue=2, initial_service_s=4, live_slots=1)
        batch = [scheduler.admit("batch") for _ in range(3)]
        with pytest.raises(Busy) as refused:
            scheduler.admit("batch")
        assert refused.value.headers == {"Retry-After": "12"}  # 3 batch in × 4 s / 1 slot
        interactive = [scheduler.admit("interactive") for _ in range(3)]  # batch's queue is not theirs
        with pytest.raises(Busy) as refused:
            scheduler.admit("interactive")
        assert refused.value.headers == {"Retry-After": "12"}  # only classes at or above interactive count
        live = [scheduler.admit("live") for _ in range(4)]  # live: + its own slot
        with pytest.raises(Busy):
            scheduler.admit("live")
        rejected = {c: scheduler.metrics.rejected.labels(c)._value.get() for c in ("live", "interactive", "batch")}
        assert rejected == {"live": 1, "interactive": 1, "batch": 1}
        for t in batch + interactive + live:
            t.release()
        assert scheduler.pending == 0 and scheduler.admitted == {"live": 0, "interactive": 0, "batch": 0}

    anyio.run(main)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_lanes_run_non_live_calls_on_niced_threads_and_a_cancelled_call_not_at_all() -> None:
    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    async def main() -> None:
        lanes = Lanes(nice=3, workers=1)
        own = nice()
        try:
            assert await lanes.run("live", nice) == own
            assert await lanes.run("interactive", nice) == await lanes.run("batch", nice) == min(19, own + 3)
            ran = threading.Event()
            with anyio.CancelScope() as scope:
                scope.cancel()  # the client left before the call began: it must not run on, unawaited
                await lanes.run("batch", ran.set)
            assert await lanes.run("batch", nice) == min(19, own + 3)  # the pool's one thread is free again
            assert not ran.is_set()
        finally:
            lanes.close()

    anyio.run(main)


def test_non_live_work_starts_no_new_unit_while_the_live_window_is_open(tmp_path) -> None:
    """With the gateway's live window open (core.live_signal), a non-live request waits before its first
    unit and at its next unit boundary, keeping its slot; live work goes on; all go on once it closes."""

    async def main() -> None:
        window = LiveSignal(tmp_path / "live")
        scheduler = Scheduler(slots=2, max_queue=8, live_slots=1, live_signal=window)
        events: list[str] = []
        running = scheduler.admit("batch")
        await running.start()  # window closed: starts at once

        async def unit(name: str, ticket: Ticket, boundary: bool) -> None:
            await (ticket.checkpoint() if boundary else ticket.start())
            events.append(name)

        window.set(time.monotonic() + 30)
        async with anyio.create_task_group() as tg:
            tg.start_soon(unit, "batch-next-unit", running, True)
            tg.start_soon(unit, "interactive-start", scheduler.admit("interactive"), False)
            tg.start_soon(unit, "live-start", scheduler.admit("live"), False)
            await anyio.sleep(0.2)
            assert events == ["live-start"]  # the others hold: 10 polls of the window passed
            window.set(None)
        assert sorted(events[1:]) == ["batch-next-unit", "interactive-start"]

    anyio.run(main)
