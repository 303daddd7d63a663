"""`core.disconnect.DisconnectWatch`: work for a client that left is cancelled, and only then.

Driven through a real ASGI `receive` (a queue of messages, as a server feeds them) on the asyncio
backend, the one june's services run on.
"""

from __future__ import annotations

import asyncio
import time

import anyio
import anyio.to_thread
import pytest

from core.disconnect import ClientGone, DisconnectWatch

pytestmark = pytest.mark.anyio


class Client:
    """An ASGI `receive` whose messages the test sends: the (empty) body, then a disconnect."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[dict] = asyncio.Queue()
        self.messages.put_nowait({"type": "http.request", "body": b"", "more_body": False})

    async def receive(self) -> dict:
        return await self.messages.get()

    def leave(self) -> None:
        self.messages.put_nowait({"type": "http.disconnect"})


async def test_work_for_a_client_that_leaves_is_cancelled() -> None:
    client = Client()
    asyncio.get_running_loop().call_later(0.05, client.leave)
    start = time.monotonic()
    with DisconnectWatch(client.receive) as watch:
        await asyncio.sleep(10)
    assert watch.gone and time.monotonic() - start < 2


async def test_work_for_a_client_that_stays_runs_to_the_end() -> None:
    client = Client()
    with DisconnectWatch(client.receive) as watch:
        await asyncio.sleep(0.05)
    assert not watch.gone
    client.leave()  # after the work: nothing left to cancel
    await asyncio.sleep(0.01)


async def test_a_shielded_model_call_finishes_before_the_cancel_lands() -> None:
    # speech relies on it: a model call in a worker thread is not abandoned half-way (its slot stays
    # taken until the thread is done), the request stops after it.
    client = Client()
    asyncio.get_running_loop().call_later(0.05, client.leave)
    steps: list[str] = []
    with DisconnectWatch(client.receive) as watch:
        await anyio.to_thread.run_sync(time.sleep, 0.3)
        steps.append("model call done")
        await asyncio.sleep(10)
        steps.append("next step")
    assert watch.gone and steps == ["model call done"]


async def test_a_disarmed_watch_no_longer_cancels() -> None:
    client = Client()
    with DisconnectWatch(client.receive) as watch:
        watch.disarm()  # the last byte is on its way
        client.leave()
        await asyncio.sleep(0.05)
    assert not watch.gone


async def test_an_unarmed_watch_cancels_only_once_armed() -> None:
    client = Client()
    with DisconnectWatch(client.receive, armed=False) as watch:
        await asyncio.sleep(0.02)
        assert client.messages.qsize() == 1  # `receive` is left to the upload until armed
        watch.arm()
        client.leave()
        await asyncio.sleep(10)
    assert watch.gone


async def test_a_cancellation_from_elsewhere_passes_through() -> None:
    client = Client()

    async def work() -> None:
        with DisconnectWatch(client.receive):
            await asyncio.sleep(10)

    task = asyncio.get_running_loop().create_task(work())
    await asyncio.sleep(0.02)
    task.cancel()  # shutdown, not the client
    with pytest.raises(asyncio.CancelledError):
        await task


def test_client_gone_is_nginx_499_in_the_openai_envelope() -> None:
    gone = ClientGone()
    assert (gone.status_code, gone.code, gone.type) == (499, "client_closed_request", "invalid_request_error")
