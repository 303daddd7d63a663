"""/v1/realtime function calling and the conversation API against the stub upstream (fast, deterministic):
the GA events of a call, the function output answered, per-response overrides, item retrieve / delete /
placement, and every malformed client event answered with an `error` while the session goes on.
The real model and real clients: tests/e2e/test_realtime_clients.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import connect

from gateway.app import create_app
from gateway.settings import RealtimeSettings
from tests.gateway.conftest import gateway_settings, serve_in_thread
from tests.gateway.stub_upstream import StubUpstream
from tests.gateway.test_realtime import _assert_error, _next, _still_serves, _ws

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME = {**WEATHER, "name": "get_time", "description": "The time in a timezone."}
TEXT_ONLY = {"output_modalities": ["text"]}


def _user(text: str, **item: Any) -> str:
    content = [{"type": "input_text", "text": text}]
    return json.dumps(
        {"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": content, **item}}
    )


async def _collect(ws: Any, until: str = "response.done", timeout: float = 20) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            out.append(message)
            if message["type"] == until:
                return out


def _chat_bodies(stub: StubUpstream) -> list[dict[str, Any]]:
    return [json.loads(s.body) for s in stub.seen if s.path == "/v1/chat/completions"]


def test_a_function_call_round_trip_in_openais_event_order(gw: str, stub: StubUpstream) -> None:
    stub.calls = [("get_weather", '{"city": "Paris"}'), ("get_time", '{"timezone": "Asia/Tokyo"}')]

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        async with connect(_ws(gw)) as ws:
            await _next(ws, "session.created")
            update = {"type": "realtime", **TEXT_ONLY, "tools": [WEATHER, TIME], "tool_choice": "required"}
            await ws.send(json.dumps({"type": "session.update", "session": update}))
            session = (await _next(ws, "session.updated"))["session"]
            assert [t["name"] for t in session["tools"]] == ["get_weather", "get_time"]
            assert session["tool_choice"] == "required" and session["tools"][0]["parameters"] == WEATHER["parameters"]
            await ws.send(_user("Weather in Paris and time in Tokyo?", id="item_question"))
            await _next(ws, "conversation.item.done")
            await ws.send(json.dumps({"type": "response.create"}))
            first = await _collect(ws)
            calls = [o for o in first[-1]["response"]["output"] if o["type"] == "function_call"]
            for call, result in zip(calls, ('{"temperature_c": 17}', '{"time": "14:05"}'), strict=True):
                output = {"type": "function_call_output", "call_id": call["call_id"], "output": result}
                await ws.send(json.dumps({"type": "conversation.item.create", "item": output}))
            placed = [await _next(ws, "conversation.item.added") for _ in calls]
            await ws.send(json.dumps({"type": "response.create"}))
            second = await _collect(ws)
            return first, placed, second

    first, placed, second = anyio.run(run)
    kinds = [e["type"] for e in first]
    assert "error" not in kinds and not any(
        k.startswith(("response.output_text", "response.output_audio")) for k in kinds
    )
    done = first[-1]["response"]
    assert done["status"] == "completed" and done["usage"]["total_tokens"] > 0
    assert [(o["type"], o["name"]) for o in done["output"]] == [
        ("function_call", "get_weather"),
        ("function_call", "get_time"),
    ]
    previous = "item_question"
    for index, call in enumerate(done["output"]):
        mine = [e for e in first if e.get("item_id") == call["id"] or e.get("item", {}).get("id") == call["id"]]
        assert [e["type"] for e in mine] == [
            "response.output_item.added",
            "conversation.item.added",  # before the arguments: pipecat remembers the call from it
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "conversation.item.done",
        ]
        assert all(e.get("output_index", index) == index for e in mine)
        assert mine[1]["previous_item_id"] == previous and mine[-1]["previous_item_id"] == previous
        previous = call["id"]
        args = mine[4]
        assert args["call_id"] == call["call_id"] and args["name"] == call["name"]
        assert mine[2]["delta"] + mine[3]["delta"] == args["arguments"] == call["arguments"]
        assert isinstance(json.loads(args["arguments"]), dict) and call["status"] == "completed"
    assert [p["previous_item_id"] for p in placed] == [done["output"][1]["id"], placed[0]["item"]["id"]]
    assert second[-1]["response"]["status"] == "completed"
    assert second[-1]["response"]["output"][0]["content"][0]["text"] == "Hello ✓"
    asked, answered = _chat_bodies(stub)
    assert asked["tool_choice"] == "required" and [t["function"]["name"] for t in asked["tools"]] == [
        "get_weather",
        "get_time",
    ]
    assert "tools" not in answered  # the session's forced choice is none for the answer (else clients loop)
    notes = [m["content"] for m in answered["messages"] if m["role"] == "user"]
    assert any("17" in n for n in notes) and any("14:05" in n for n in notes)


def test_response_create_overrides_and_out_of_band(gw: str, stub: StubUpstream) -> None:
    stub.calls = [("get_time", '{"timezone": "UTC"}')]

    async def run() -> list[dict[str, Any]]:
        async with connect(_ws(gw)) as ws:
            await _next(ws, "session.created")
            await ws.send(_user("What time is it?"))
            await _next(ws, "conversation.item.done")
            response = {
                "conversation": "none",
                "instructions": "Answer in French.",
                "tools": [WEATHER, TIME],
                "tool_choice": {"type": "function", "name": "get_time"},
                "max_output_tokens": 42,
                "output_modalities": ["text"],
                "metadata": {"client_event_id": "lk_1"},
            }
            await ws.send(json.dumps({"type": "response.create", "response": response}))
            events = await _collect(ws)
            call_id = events[-1]["response"]["output"][0]["id"]
            await ws.send(json.dumps({"type": "conversation.item.retrieve", "item_id": call_id}))
            events.append(await _next(ws))
            return events

    events = anyio.run(run)
    created, done = events[0], events[-2]
    for response in (created["response"], done["response"]):
        assert response["metadata"] == {"client_event_id": "lk_1"} and response["conversation_id"] is None
        assert response["output_modalities"] == ["text"] and response["max_output_tokens"] == 42
    assert not [e for e in events if e["type"].startswith("conversation.item.")]  # out of band: not in the history
    _assert_error(events[-1], "item_not_found", "item_id")
    body = _chat_bodies(stub)[-1]
    assert body["messages"][0] == {"role": "system", "content": "Answer in French."}
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_time"}} and body["max_tokens"] == 42


def test_items_are_placed_retrieved_and_deleted(gw: str, stub: StubUpstream) -> None:
    async def run() -> list[dict[str, Any]]:
        async with connect(_ws(gw)) as ws:
            await _next(ws, "session.created")
            await ws.send(json.dumps({"type": "session.update", "session": TEXT_ONLY}))
            got = []
            for event in (
                _user("First.", id="a"),
                json.dumps({**json.loads(_user("Zeroth.", id="b")), "previous_item_id": "root"}),
                json.dumps({**json.loads(_user("Second.", id="c")), "previous_item_id": "a"}),
            ):
                await ws.send(event)
                got.append(await _next(ws, "conversation.item.added"))
            await ws.send(json.dumps({"type": "conversation.item.retrieve", "item_id": "b"}))
            got.append(await _next(ws, "conversation.item.retrieved"))
            await ws.send(json.dumps({"type": "conversation.item.delete", "item_id": "a"}))
            got.append(await _next(ws, "conversation.item.deleted"))
            await ws.send(json.dumps({"type": "response.create"}))
            await _next(ws, "response.done")
            return got

    added_a, added_b, added_c, retrieved, deleted = anyio.run(run)
    assert [added_a["previous_item_id"], added_b["previous_item_id"], added_c["previous_item_id"]] == [None, None, "a"]
    assert retrieved["item"]["id"] == "b" and retrieved["item"]["content"][0]["text"] == "Zeroth."
    assert deleted["item_id"] == "a"
    messages = _chat_bodies(stub)[-1]["messages"]
    assert [m["content"] for m in messages[1:]] == ["Zeroth.", "Second."]


def test_semantic_vad_falls_back_to_server_vad_and_keeps_the_tools(gw: str) -> None:
    async def run() -> dict[str, Any]:
        async with connect(_ws(gw)) as ws:
            await _next(ws, "session.created")
            session = {
                "type": "realtime",
                "model": "gpt-realtime",
                "tracing": "auto",
                "tools": [WEATHER],
                "audio": {
                    "input": {
                        "turn_detection": {"type": "semantic_vad", "eagerness": "medium"},
                        "noise_reduction": None,
                    }
                },
            }
            await ws.send(json.dumps({"type": "session.update", "session": session}))
            return (await _next(ws))["session"]

    session = anyio.run(run)
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"  # what runs, echoed
    assert session["tools"][0]["name"] == "get_weather"


def test_calls_past_the_limit_end_the_response_incomplete(gw: str, stub: StubUpstream) -> None:
    stub.calls = [("get_weather", '{"city": "Paris"}')] * 9

    async def run() -> list[dict[str, Any]]:
        async with connect(_ws(gw)) as ws:
            await _next(ws, "session.created")
            await ws.send(
                json.dumps(
                    {"type": "session.update", "session": {**TEXT_ONLY, "tools": [WEATHER], "tool_choice": "required"}}
                )
            )
            await ws.send(_user("Weather everywhere?"))
            await ws.send(json.dumps({"type": "response.create"}))
            events = await _collect(ws)
            await _still_serves(ws)
            return events

    events = anyio.run(run)
    done = events[-1]["response"]
    assert done["status"] == "incomplete" and len(done["output"]) == 8
    _assert_error(next(e for e in events if e["type"] == "error"), "tool_calls_above_limit")


def _item(item: dict[str, Any], **event: Any) -> dict[str, Any]:
    return {"type": "conversation.item.create", "item": item, **event}


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        (
            _item({"type": "function_call_output", "call_id": "call_nope", "output": "{}"}),
            "invalid_tool_call_id",
            "item.call_id",
        ),
        (
            _item({"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{not json"}),
            "invalid_value",
            "item.arguments",
        ),
        (
            _item({"type": "function_call", "call_id": "c1", "name": "get weather!", "arguments": "{}"}),
            "invalid_value",
            "item.name",
        ),
        (
            {"type": "session.update", "session": {"tools": [{**WEATHER, "parameters": {"type": "string"}}]}},
            "invalid_value",
            "session.tools[0].parameters.type",
        ),
        (
            {"type": "session.update", "session": {"tools": [{**WEATHER, "parameters": [1]}]}},
            "invalid_value",
            "session.tools[0].parameters",
        ),
        (
            {"type": "session.update", "session": {"tools": [{**WEATHER, "name": f"f{i}"} for i in range(65)]}},
            "tools_above_max_size",
            "session.tools",
        ),
        (
            {"type": "session.update", "session": {"tools": [{"type": "mcp", "server_label": "x"}]}},
            "unsupported_tool_type",
            "session.tools[0].type",
        ),
        ({"type": "session.update", "session": {"tool_choice": "sometimes"}}, "invalid_value", "session.tool_choice"),
        (
            {"type": "session.update", "session": {"audio": {"input": {"noise_reduction": {"type": "near_field"}}}}},
            "unsupported_value",
            "session.audio.input.noise_reduction",
        ),
        ({"type": "conversation.item.retrieve", "item_id": "item_nope"}, "item_not_found", "item_id"),
        ({"type": "conversation.item.delete", "item_id": "item_nope"}, "item_not_found", "item_id"),
        ({**json.loads(_user("Hi.")), "previous_item_id": "item_nope"}, "item_not_found", "previous_item_id"),
        (
            {
                "type": "response.create",
                "response": {"tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}},
            },
            "invalid_value",
            "response.tool_choice.name",
        ),
        ({"type": "response.create", "response": {"metadata": {"k": 1}}}, "invalid_value", "response.metadata"),
        (
            {"type": "response.create", "response": {"conversation": "conv_other"}},
            "invalid_value",
            "response.conversation",
        ),
        (
            {"type": "response.create", "response": {"input": [{"type": "item_reference", "id": "item_nope"}]}},
            "item_not_found",
            "response.input[0].id",
        ),
    ],
)
def test_bad_function_and_item_events_get_an_error_and_the_session_goes_on(
    gw: str, event: dict, code: str, param: str
) -> None:
    async def run() -> None:
        async with connect(_ws(gw)) as ws:
            await _next(ws, "session.created")
            await ws.send(json.dumps({**event, "event_id": "evt_bad"}))
            error = await _next(ws)
            _assert_error(error, code, param)
            assert error["error"]["event_id"] == "evt_bad"
            await _still_serves(ws)

    anyio.run(run)


def test_deeply_nested_event_is_invalid_json_not_a_closed_socket(gw: str) -> None:
    async def run() -> None:
        async with connect(_ws(gw), max_size=None) as ws:
            await _next(ws, "session.created")
            await ws.send("[" * 100_000 + "]" * 100_000)  # 200 KB: json's C decoder runs out of stack
            _assert_error(await _next(ws), "invalid_json")
            await _still_serves(ws)

    anyio.run(run)


def test_a_function_output_over_the_limit_is_refused(gw: str, stub: StubUpstream) -> None:
    stub.calls = [("get_weather", '{"city": "Paris"}')]

    async def run() -> None:
        async with connect(_ws(gw)) as ws:
            await _next(ws, "session.created")
            await ws.send(
                json.dumps(
                    {"type": "session.update", "session": {**TEXT_ONLY, "tools": [WEATHER], "tool_choice": "required"}}
                )
            )
            await ws.send(_user("Weather?"))
            await ws.send(json.dumps({"type": "response.create"}))
            call = (await _next(ws, "response.done"))["response"]["output"][0]
            output = {"type": "function_call_output", "call_id": call["call_id"], "output": "x" * 70_000}
            await ws.send(json.dumps(_item(output)))
            _assert_error(await _next(ws, "error"), "string_above_max_length", "item.output")
            await _still_serves(ws)

    anyio.run(run)


def test_native_history_keeps_each_tool_message_after_its_call(stub_url: str, stub: StubUpstream) -> None:
    """JUNE_GATEWAY_REALTIME_TOOL_HISTORY=native: calls are assistant tool_calls, outputs tool messages, and a
    history trimmed past max_turns never sends a tool message whose call is gone (vLLM refuses it)."""
    settings = gateway_settings(
        stub_url, realtime=RealtimeSettings(max_turns=1, tool_history="native"), read_timeout=10
    )
    stub.calls = [("get_weather", '{"city": "Paris"}')]

    async def run(url: str) -> None:
        async with connect(_ws(url)) as ws:
            await _next(ws, "session.created")
            await ws.send(
                json.dumps(
                    {"type": "session.update", "session": {**TEXT_ONLY, "tools": [WEATHER], "tool_choice": "required"}}
                )
            )
            await ws.send(_user("Weather in Paris?"))
            await ws.send(json.dumps({"type": "response.create"}))
            call = (await _next(ws, "response.done"))["response"]["output"][0]
            output = {"type": "function_call_output", "call_id": call["call_id"], "output": '{"temperature_c": 17}'}
            await ws.send(json.dumps(_item(output)))
            await ws.send(json.dumps({"type": "response.create"}))
            await _next(ws, "response.done")
            for text in ("And tomorrow?", "Thanks."):
                await ws.send(_user(text))
                await ws.send(json.dumps({"type": "response.create", "response": {"tool_choice": "none"}}))
                assert (await _next(ws, "response.done"))["response"]["status"] == "completed"

    with serve_in_thread(create_app(settings)) as url:
        anyio.run(run, url)
    bodies = _chat_bodies(stub)
    answer = bodies[1]["messages"]
    assert answer[-2]["role"] == "assistant" and answer[-2]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert answer[-1] == {"role": "tool", "tool_call_id": call_id(answer[-2]), "content": '{"temperature_c": 17}'}
    for body in bodies:
        ids: set[str] = set()
        for message in body["messages"]:
            ids |= {c["id"] for c in message.get("tool_calls") or []}
            assert message["role"] != "tool" or message["tool_call_id"] in ids, body["messages"]
    assert all(m["role"] != "tool" for m in bodies[-1]["messages"])  # trimmed away with its call


def call_id(message: dict[str, Any]) -> str:
    return str(message["tool_calls"][0]["id"])
