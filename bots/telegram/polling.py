"""Long polling that confirms only what was answered, and a shutdown that finishes what is in flight.

aiogram's ``Dispatcher.start_polling`` confirms each update as soon as it is handed to a task (the
next ``getUpdates`` carries ``offset = last id + 1``), and on a signal it cancels polling and closes
the session while those tasks still run: updates in flight are lost, never delivered again. Here
the dispatcher is fed the same way (``Dispatcher.feed_update``, one task per update), but:

- the offset sent is the smallest update id still being answered (or the last id + 1 when none
  is): Telegram confirms every update below the offset, so nothing unanswered is ever confirmed.
  Updates it sends again (in flight or answered after the oldest one in flight) are skipped by id.
  While the oldest update in flight holds the offset back, Telegram answers at once with what is
  unconfirmed, so the poller then waits for a task to finish or `REPOLL_INTERVAL` before asking
  again, instead of spinning;
- on `stop` (a SIGTERM/SIGINT, or the caller) it stops fetching at once, lets the updates in
  flight finish for up to `grace` seconds, cancels what is left (no apology: the update comes
  again), confirms what was answered, and only then returns.

An update that could not finish is delivered again when the bot restarts. So is one answered
after it (Telegram's confirmation is a watermark, not per update): at a restart within a burst,
such a message may be answered twice rather than not at all. Telegram returns at most 100
updates per call, so an update stuck in flight hides those more than 100 behind it until it ends
(at the latest at the reply deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import GetUpdates
from aiogram.types import Update
from aiogram.utils.backoff import Backoff, BackoffConfig

log = logging.getLogger(__name__)

REPOLL_INTERVAL = 1.0
"""Seconds between getUpdates calls while the oldest update in flight holds the offset back."""
BATCH = 100
"""Most updates per getUpdates (Telegram's maximum)."""
BACKOFF = BackoffConfig(min_delay=1.0, max_delay=5.0, factor=1.3, jitter=0.1)
"""Waits after a failed getUpdates, as aiogram's own polling does."""


class Poller:
    """Feeds `dispatcher` the updates of `bot` by long polling (see the module docstring).

    `timeout` is getUpdates' long-poll wait (seconds); `grace` the seconds updates in flight get to
    finish once stopping; `stopping` (set it, or call `stop`) ends the polling; `workflow` reaches
    the handlers as keyword arguments, after the dispatcher's own workflow data. ``confirmed`` is
    the last offset sent (every update below it is confirmed); ``in_flight`` the ids being answered.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        bot: Bot,
        *,
        timeout: int = 30,
        grace: float = 30.0,
        stopping: asyncio.Event | None = None,
        **workflow: Any,
    ) -> None:
        self.dispatcher, self.bot = dispatcher, bot
        self.timeout, self.grace = timeout, grace
        self.workflow = workflow
        self.stopping = stopping or asyncio.Event()
        self.confirmed: int | None = None
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._seen: set[int] = set()  # ids at or above the offset already started (answered or in flight)
        self._next = 0  # the offset once nothing is in flight: the highest id seen + 1
        self._finished = asyncio.Event()

    @property
    def in_flight(self) -> set[int]:
        return set(self._tasks)

    def stop(self) -> None:
        """Stop fetching; `run` returns once the updates in flight are done or `grace` has passed."""
        self.stopping.set()

    def _offset(self) -> int | None:
        if self._tasks:
            return min(self._tasks)
        return self._next or None

    async def run(self, *, handle_signals: bool = True) -> None:
        """Poll until `stop` (or SIGTERM/SIGINT with `handle_signals`), then shut down gracefully."""
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
                    loop.add_signal_handler(sig, self._on_signal, sig)
        allowed = self.dispatcher.resolve_used_update_types()
        backoff = Backoff(BACKOFF)
        try:
            while not self.stopping.is_set():
                offset = self._offset()
                method = GetUpdates(offset=offset, limit=BATCH, timeout=self.timeout, allowed_updates=allowed)
                try:
                    updates = await self._unless_stopping(
                        self.bot(method, request_timeout=int(self.bot.session.timeout + self.timeout))
                    )
                except Exception as e:  # noqa: BLE001 - Telegram unreachable, 5xx, 409…: keep polling, as aiogram does
                    log.error("getUpdates failed (%s: %s); retrying in %.1f s", type(e).__name__, e, backoff.next_delay)
                    await self._unless_stopping(backoff.asleep())
                    continue
                if updates is None:
                    break  # stopping
                backoff.reset()
                self.confirmed = offset
                self._forget_below(offset)
                fresh = [
                    u for u in updates if u.update_id not in self._seen and (offset is None or u.update_id >= offset)
                ]
                for update in fresh:
                    self._start(update)
                if updates and not fresh:
                    # Only updates already being answered came back (the offset is held by one in
                    # flight): don't spin, ask again when one finishes or a little later.
                    self._finished.clear()
                    waiters = {
                        asyncio.ensure_future(self._finished.wait()),
                        asyncio.ensure_future(self.stopping.wait()),
                    }
                    _, pending = await asyncio.wait(
                        waiters, timeout=REPOLL_INTERVAL, return_when=asyncio.FIRST_COMPLETED
                    )
                    for waiter in pending:
                        waiter.cancel()
        finally:
            if handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    with contextlib.suppress(NotImplementedError):
                        loop.remove_signal_handler(sig)
            await self._shut_down()

    def _on_signal(self, sig: signal.Signals) -> None:
        log.warning("received %s: finishing the %d update(s) in flight, then exiting", sig.name, len(self._tasks))
        self.stop()

    async def _unless_stopping(self, work: Any) -> Any:
        """`await work`, or None as soon as `stopping` is set (then `work` is cancelled)."""
        task = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        return None if task.cancelled() else task.result()

    def _start(self, update: Update) -> None:
        self._seen.add(update.update_id)
        self._next = max(self._next, update.update_id + 1)
        task = asyncio.create_task(self._answer(update), name=f"telegram-update-{update.update_id}")
        self._tasks[update.update_id] = task

    async def _answer(self, update: Update) -> None:
        try:
            await self.dispatcher.feed_update(self.bot, update, **self.workflow)
        except Exception:  # the router's error handler answers what it can; anything else is logged
            log.exception("update %s failed", update.update_id)
        finally:
            self._tasks.pop(update.update_id, None)
            self._finished.set()

    def _forget_below(self, offset: int | None) -> None:
        if offset is not None:
            self._seen = {i for i in self._seen if i >= offset}

    async def _shut_down(self) -> None:
        """Let the updates in flight finish within `grace`, cancel the rest, confirm what was answered."""
        tasks = list(self._tasks.values())
        if tasks:
            log.info("waiting up to %.0f s for %d update(s) in flight", self.grace, len(tasks))
            await asyncio.wait(tasks, timeout=self.grace)
        left = sorted(self._tasks)
        for task in list(self._tasks.values()):
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        offset = left[0] if left else self._next
        if left:
            log.warning(
                "%d update(s) not answered within %.0f s: Telegram will deliver them again", len(left), self.grace
            )
        if offset and offset != self.confirmed:
            try:  # timeout=0 returns at once; it only confirms
                await self.bot(GetUpdates(offset=offset, limit=1, timeout=0))
                self.confirmed = offset
            except Exception as e:  # noqa: BLE001 - at shutdown, best effort: the worst case is a repeat
                log.error(
                    "could not confirm answered updates (%s: %s); they may be answered again", type(e).__name__, e
                )
