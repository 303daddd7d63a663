"""Noticing that an HTTP client has gone and stopping the work done for it, for june's ASGI services.

An ASGI server tells an app that the client closed the connection with an ``http.disconnect``
message from `receive` (https://asgi.readthedocs.io/en/latest/specs/www.html#disconnect-receive-event).
Once the request body has been read, that is the only message left to come, so one small task
waiting on `receive` learns of it as soon as the server does. `DisconnectWatch` turns it into
the cancellation of the work done for that client (a queued model call, an upstream request), so
that nothing keeps running for a reply nobody will read. Used by the gateway (gateway.proxy) and
the speech service (speech.routes).
"""

from __future__ import annotations

import asyncio
from types import TracebackType

import anyio
from litestar.types import Receive

from core.web import OpenAIError


class ClientGone(OpenAIError):
    """The client disconnected before its response started: nginx's 499 client_closed_request.
    Nobody reads this reply; raising it ends the request's work and is counted like any error."""

    def __init__(self) -> None:
        super().__init__(499, "Client closed the request.", code="client_closed_request")


class DisconnectWatch:
    """Cancels the work inside it when the HTTP client disconnects (ASGI ``http.disconnect``).

    ::

        with DisconnectWatch(receive) as watch:
            await work()          # cancelled at its next await once the client has gone
        if watch.gone:            # the work was cut short because the client left
            raise ClientGone

    Only watch once the request body has been read: the watch consumes `receive`. `armed=False`
    enters without watching and `arm()` starts later (an upload watched once it has been sent);
    `disarm()` stops watching (once the last byte is on its way, a disconnect no longer matters).
    The cancellation is an anyio cancel scope's: work in a shielded scope (anyio's
    `to_thread.run_sync`) finishes that step first, and the scope absorbs its own cancellation;
    any other cancellation (shutdown) passes through. A plain task, not a task group, waits on
    `receive`, so the work's own errors leave unwrapped.
    """

    def __init__(self, receive: Receive, *, armed: bool = True) -> None:
        self._receive = receive
        self._armed = armed
        self._scope = anyio.CancelScope()
        self._waiter: asyncio.Task[None] | None = None
        self._done = False

    @property
    def gone(self) -> bool:
        """The client disconnected and the work inside was cancelled for it (valid once exited)."""
        return self._scope.cancelled_caught

    def __enter__(self) -> DisconnectWatch:
        self._scope.__enter__()
        if self._armed:
            self.arm()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> bool:
        self.disarm()
        return self._scope.__exit__(kind, error, tb)

    def arm(self) -> None:
        """Start watching (idempotent; nothing once disarmed)."""
        if self._waiter is None and not self._done:
            self._waiter = asyncio.get_running_loop().create_task(self._watch())

    def disarm(self) -> None:
        """Stop watching for good (idempotent)."""
        self._done = True
        if self._waiter is not None:
            self._waiter.cancel()

    async def _watch(self) -> None:
        # An unread empty body message (a request without a body) comes first: skipped.
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if not self._done:
            self._scope.cancel()
