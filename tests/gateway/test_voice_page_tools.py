"""The voice page's demo tool in a real headless Chromium (Debian's package, driven by Playwright)
against a scripted realtime server that calls it the way OpenAI's GA protocol streams a function call
(docs/realtime-protocol.md): the page offers the calculator in session.update, shows each call as a
card (name, arguments, result), runs it without eval and sends the function_call_output back, then
asks for the answer."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from litestar import Litestar, WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.static_files import create_static_files_router

from tests.conftest import require_program
from tests.gateway.conftest import serve_in_thread

STATIC = Path(__file__).parents[2] / "gateway" / "static"
SCREENSHOT = Path(__file__).parents[2] / "docs" / "voice-page-tool.png"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
CALLS = [("call_demo1", '{"expression": "12 * 7"}'), ("call_demo2", '{"expression": "1 / 0"}')]
ANSWER = "12 times 7 is 84, and one divided by zero has no answer."


def _event(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "event_id": f"event_{uuid.uuid4().hex[:20]}", **fields}


def _call_item(n: int, status: str, arguments: str) -> dict[str, Any]:
    call_id, _ = CALLS[n]
    return {"id": f"item_call{n}", "object": "realtime.item", "type": "function_call", "status": status,
            "name": "calculate", "call_id": call_id, "arguments": arguments}  # fmt: skip


async def _function_calls(send: Any, response: dict[str, Any]) -> None:
    """Both calls of CALLS in one response, in the GA order, their arguments in two deltas each."""
    await send(_event("response.created", response={**response, "status": "in_progress"}))
    ids = {"response_id": response["id"]}
    for n, (call_id, arguments) in enumerate(CALLS):
        item = _call_item(n, "in_progress", "")
        await send(_event("response.output_item.added", **ids, output_index=n, item=item))
        await send(_event("conversation.item.added", previous_item_id=None, item=item))
        at = {**ids, "item_id": item["id"], "output_index": n, "call_id": call_id}
        for piece in (arguments[:10], arguments[10:]):
            await send(_event("response.function_call_arguments.delta", **at, delta=piece))
        await send(_event("response.function_call_arguments.done", **at, name="calculate", arguments=arguments))
        done = _call_item(n, "completed", arguments)
        await send(_event("response.output_item.done", **ids, output_index=n, item=done))
        await send(_event("conversation.item.done", previous_item_id=None, item=done))
    output = [_call_item(n, "completed", a) for n, (_, a) in enumerate(CALLS)]
    await send(_event("response.done", response={**response, "status": "completed", "output": output}))


async def _text_answer(send: Any, response: dict[str, Any]) -> None:
    await send(_event("response.created", response={**response, "status": "in_progress"}))
    ids = {"response_id": response["id"], "item_id": "item_answer", "output_index": 0, "content_index": 0}
    await send(_event("response.output_text.delta", **ids, delta=ANSWER))
    await send(_event("response.output_text.done", **ids, text=ANSWER))
    await send(_event("response.done", response={**response, "status": "completed", "output": []}))


def scripted_realtime(seen: list[dict[str, Any]]) -> Litestar:
    """The voice page at `/` and a /v1/realtime that answers the first response.create with CALLS
    and the next with ANSWER; every client event lands in `seen`."""

    @websocket("/v1/realtime")
    async def realtime(socket: WebSocket) -> None:
        await socket.accept(subprotocols="realtime")

        async def send(payload: dict[str, Any]) -> None:
            await socket.send_data(json.dumps(payload))

        await send(_event("session.created", session={"type": "realtime", "id": "sess_1", "tools": []}))
        while True:
            try:
                data = json.loads(await socket.receive_data(mode="text"))
            except WebSocketDisconnect:
                return
            seen.append(data)
            if data["type"] == "session.update":
                await send(_event("session.updated", session=data["session"]))
            elif data["type"] == "conversation.item.create":
                item = {"id": f"item_{uuid.uuid4().hex[:20]}", **data["item"]}
                await send(_event("conversation.item.added", previous_item_id=None, item=item))
                await send(_event("conversation.item.done", previous_item_id=None, item=item))
            elif data["type"] == "response.create":
                n = sum(1 for e in seen if e["type"] == "response.create")
                response = {"object": "realtime.response", "id": f"resp_{n}", "output": [], "metadata": None}
                await (_function_calls if n == 1 else _text_answer)(send, response)

    return Litestar([realtime, create_static_files_router(path="/", directories=[STATIC], html_mode=True)])


@contextlib.contextmanager
def _page(url: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=require_program("chromium", "chromium"), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 760, "height": 620})
            page.goto(url)
            yield page
        finally:
            browser.close()


def test_page_runs_the_demo_tool_and_shows_each_call(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    with serve_in_thread(scripted_realtime(seen)) as url, _page(url) as page:
        page.click("#settings summary")
        page.select_option("#tool-demo", "required")
        page.fill("#text", "What is 12 times 7, and 1 divided by 0?")
        page.click("button[type=submit]")
        page.wait_for_function("window.juneStats.toolCalls === 2", timeout=30_000)
        page.wait_for_selector(".bubble.june", timeout=30_000)
        page.click("#settings summary")  # closed again for the screenshot
        page.screenshot(path=str(tmp_path / "tool-card.png"))
        if os.environ.get("JUNE_SAVE_SCREENSHOT"):  # refresh docs/voice-page-tool.png (shown by the README)
            from PIL import Image

            shot = Image.open(tmp_path / "tool-card.png").convert("RGB")
            shot.quantize(colors=128, method=Image.Quantize.FASTOCTREE).save(SCREENSHOT, optimize=True)  # ~20 KB
        cards = page.locator(".tool-card")
        texts = [cards.nth(i).inner_text() for i in range(cards.count())]
        states = [cards.nth(i).get_attribute("class") for i in range(cards.count())]
        answer = page.locator(".bubble.june p").inner_text()

    assert len(texts) == 2
    first, second = (" ".join(t.split()) for t in texts)
    assert "calculate" in first and "expression: 12 * 7" in first and "result 84" in first and "done" in first.lower()
    assert "expression: 1 / 0" in second and "division by zero" in second and "failed" in second.lower()
    assert states[0] is not None and "running" not in states[0] and "failed" in (states[1] or "")
    assert answer == ANSWER

    update = next(e for e in seen if e["type"] == "session.update")["session"]
    assert update["tool_choice"] == "required"
    (tool,) = update["tools"]
    assert tool["type"] == "function" and tool["name"] == "calculate"
    assert tool["parameters"]["type"] == "object" and tool["parameters"]["required"] == ["expression"]
    outputs = [e["item"] for e in seen if e["type"] == "conversation.item.create" and e["item"]["type"] != "message"]
    assert [(o["type"], o["call_id"]) for o in outputs] == [("function_call_output", c) for c, _ in CALLS]
    assert json.loads(outputs[0]["output"]) == {"result": 84}
    assert "division by zero" in json.loads(outputs[1]["output"])["error"]
    # One answer is asked for, after both outputs (at the first response's response.done).
    kinds = [e["type"] if e["type"] != "conversation.item.create" else e["item"]["type"] for e in seen]
    assert kinds.count("response.create") == 2
    assert kinds.index("function_call_output") < len(kinds) - 1 - kinds[::-1].index("response.create")
    assert kinds[-1] == "response.create"


def test_the_tool_is_off_by_default(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    with serve_in_thread(scripted_realtime(seen)) as url, _page(url) as page:
        page.fill("#text", "Hello")
        page.click("button[type=submit]")
        page.wait_for_function("window.juneStats.toolCalls === 2", timeout=30_000)  # the script calls anyway
    update = next(e for e in seen if e["type"] == "session.update")["session"]
    assert update["tools"] == [] and update["tool_choice"] == "auto"
