"""gateway.realtime_tools: tool lists and choices checked, chat-completions tools built, streamed tool calls
assembled into realtime events that the `openai` SDK's own types accept."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.chat import ChatCompletionChunk
from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter

from gateway.realtime_events import BadEvent
from gateway.realtime_tools import (
    FunctionTool,
    ToolCallAssembler,
    ToolCallLimit,
    ToolLimits,
    add_to_chat,
    chat_tools,
    check_tool_choice,
    parse_function_call,
    parse_function_call_output,
    parse_tool_choice,
    parse_tools,
    response_choice,
    tool_choice_wire,
)

SERVER_EVENT = TypeAdapter(RealtimeServerEvent)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}

# What vLLM 0.32 (hermes parser, Qwen2.5-Coder-0.5B, tool_choice "required") streamed for "What's the weather
# like in Paris right now?": one delta with id and name, then the arguments a token or two at a time.
VLLM_DELTAS: list[dict[str, Any]] = [
    {"index": 0, "id": "chatcmpl-tool-a0ad071b090e2848", "function": {"name": "get_weather"}, "type": "function"},
    {"index": 0, "function": {"arguments": '{"'}},
    {"index": 0, "function": {"arguments": "city"}},
    {"index": 0, "function": {"arguments": '":'}},
    {"index": 0, "function": {"arguments": ' "'}},
    {"index": 0, "function": {"arguments": "Paris"}},
    {"index": 0, "function": {"arguments": '"}'}},
]


def bad(call: Any, *args: Any, **kwargs: Any) -> BadEvent:
    with pytest.raises(BadEvent) as caught:
        call(*args, **kwargs)
    return caught.value


# --- tools --------------------------------------------------------------------------------------------


def test_tools_round_trip_to_the_session_and_to_chat_completions() -> None:
    tools = parse_tools([WEATHER, {"type": "function", "name": "now"}])
    assert tools[0].wire() == WEATHER
    assert tools[1].parameters == {"type": "object", "properties": {}}  # no parameters: a function of nothing
    fields = chat_tools(tools, parse_tool_choice("required", tools))
    assert fields["tool_choice"] == "required"
    assert fields["tools"][0] == {
        "type": "function",
        "function": {k: WEATHER[k] for k in ("name", "description", "parameters")},
    }


def test_no_tools_or_choice_none_sends_the_model_no_tools() -> None:
    """With tools in the prompt even `none` makes the small model write a call as JSON text (the experiment in
    docs/realtime-protocol.md), so `none` leaves them out."""
    tools = parse_tools([WEATHER])
    assert chat_tools([], "auto") == {}
    assert chat_tools(tools, "none") == {}
    assert chat_tools(tools, "auto")["tool_choice"] == "auto"


@pytest.mark.parametrize(
    ("tools", "param", "code"),
    [
        ({"type": "function"}, "session.tools", "invalid_value"),
        ([["get_weather"]], "session.tools[0]", "invalid_value"),
        ([{**WEATHER, "type": "mcp", "server_label": "x"}], "session.tools[0].type", "unsupported_tool_type"),
        ([{**WEATHER, "name": "get weather"}], "session.tools[0].name", "invalid_value"),
        ([{**WEATHER, "name": "x" * 65}], "session.tools[0].name", "invalid_value"),
        ([{k: v for k, v in WEATHER.items() if k != "name"}], "session.tools[0].name", "invalid_value"),
        ([WEATHER, WEATHER], "session.tools[1].name", "invalid_value"),
        ([{**WEATHER, "description": 7}], "session.tools[0].description", "invalid_value"),
        ([{**WEATHER, "description": "d" * 4097}], "session.tools[0].description", "string_above_max_length"),
        ([{**WEATHER, "parameters": "object"}], "session.tools[0].parameters", "invalid_value"),
        ([{**WEATHER, "parameters": [{"type": "object"}]}], "session.tools[0].parameters", "invalid_value"),
        ([{**WEATHER, "parameters": {"type": "string"}}], "session.tools[0].parameters.type", "invalid_value"),
        (
            [{**WEATHER, "parameters": {"type": "object", "properties": []}}],
            "session.tools[0].parameters.properties",
            "invalid_value",
        ),
        (
            [{**WEATHER, "parameters": {"type": "object", "required": "city"}}],
            "session.tools[0].parameters.required",
            "invalid_value",
        ),
        (
            [{**WEATHER, "parameters": {"type": "object", "default": float("nan")}}],
            "session.tools[0].parameters",
            "invalid_value",
        ),
    ],
)
def test_a_bad_tool_names_its_param(tools: Any, param: str, code: str) -> None:
    error = bad(parse_tools, tools)
    assert (error.param, error.code) == (param, code)


def test_the_param_prefix_follows_the_event() -> None:
    assert bad(parse_tools, [{"name": "?"}], "response.tools").param == "response.tools[0].name"


def test_tool_lists_are_bounded_in_count_size_and_nesting() -> None:
    limits = ToolLimits(max_tools=3, max_schema_chars=300, max_total_chars=600, max_depth=5)
    many = [{**WEATHER, "name": f"f{i}"} for i in range(4)]
    assert bad(parse_tools, many, limits=limits).code == "tools_above_max_size"
    assert len(parse_tools(many[:3], limits=limits)) == 3

    big = {**WEATHER, "parameters": {"type": "object", "description": "x" * 300}}
    assert (bad(parse_tools, [big], limits=limits).code, bad(parse_tools, [big], limits=limits).param) == (
        "string_above_max_length",
        "session.tools[0].parameters",
    )
    fat = [{**WEATHER, "name": f"f{i}", "description": "d" * 150} for i in range(3)]  # each fits, all do not
    assert bad(parse_tools, fat, limits=limits).code == "tools_above_max_size"

    deep: dict[str, Any] = {"type": "string"}
    for _ in range(5):
        deep = {"type": "object", "properties": {"x": deep}}
    error = bad(parse_tools, [{**WEATHER, "parameters": deep}], limits=limits)
    assert (error.param, error.code) == ("session.tools[0].parameters", "schema_too_deep")


def test_a_hostile_schema_is_refused_without_recursing() -> None:
    """A schema nested 100 000 levels (what a 1 MB event can carry) is measured without recursion."""
    deep: Any = {}
    for _ in range(100_000):
        deep = {"a": deep}
    assert (
        bad(parse_tools, [{**WEATHER, "parameters": {"type": "object", "properties": deep}}]).code == "schema_too_deep"
    )


# --- tool_choice --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "choice",
    [
        "auto",
        "none",
        "required",
        {"type": "function", "name": "get_weather"},
        {"type": "function", "function": {"name": "get_weather"}},
    ],
)
def test_tool_choices_are_accepted_and_echoed_in_the_ga_form(choice: Any) -> None:
    parsed = parse_tool_choice(choice, parse_tools([WEATHER]))
    assert tool_choice_wire(parsed) == (
        choice if isinstance(choice, str) else {"type": "function", "name": "get_weather"}
    )


def test_a_named_choice_becomes_the_chat_completions_form() -> None:
    tools = parse_tools([WEATHER])
    fields = chat_tools(tools, parse_tool_choice({"type": "function", "name": "get_weather"}, tools))
    assert fields["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


@pytest.mark.parametrize(
    ("choice", "param", "code"),
    [
        ("sometimes", "session.tool_choice", "invalid_value"),
        (None, "session.tool_choice", "invalid_value"),
        (3, "session.tool_choice", "invalid_value"),
        ({}, "session.tool_choice", "invalid_value"),
        ({"type": "mcp", "server_label": "x"}, "session.tool_choice.type", "unsupported_tool_type"),
        ({"type": "function"}, "session.tool_choice.name", "invalid_value"),
        ({"type": "function", "name": "get_time"}, "session.tool_choice.name", "invalid_value"),
    ],
)
def test_a_bad_tool_choice_names_its_param(choice: Any, param: str, code: str) -> None:
    error = bad(parse_tool_choice, choice, parse_tools([WEATHER]))
    assert (error.param, error.code) == (param, code)


# --- the model's calls --------------------------------------------------------------------------------


def test_vllm_deltas_become_the_ga_function_call_events_in_order() -> None:
    assembler = ToolCallAssembler("resp_1", first_output_index=0)
    events = [e for d in VLLM_DELTAS for e in assembler.feed(d)] + assembler.finish()
    for e in events:
        SERVER_EVENT.validate_python(e)  # the SDK's own models accept every event
    kinds = [e["type"] for e in events]
    assert kinds == ["response.output_item.added"] + ["response.function_call_arguments.delta"] * 6 + [
        "response.function_call_arguments.done",
        "response.output_item.done",
    ]
    added, done = events[0]["item"], events[-1]["item"]
    assert (added["status"], added["arguments"], added["name"]) == ("in_progress", "", "get_weather")
    assert (done["status"], json.loads(done["arguments"])) == ("completed", {"city": "Paris"})
    assert "".join(e["delta"] for e in events if e["type"].endswith(".delta")) == done["arguments"]
    ids = {(e.get("item_id") or e["item"]["id"], e.get("call_id") or e["item"]["call_id"]) for e in events}
    assert len(ids) == 1 and next(iter(ids))[1].startswith("call_")  # one item, one call id: june's, not vLLM's
    assert {e["response_id"] for e in events} == {"resp_1"}
    assert assembler.items == [done]


def test_the_sdks_own_chunk_objects_are_accepted() -> None:
    assembler = ToolCallAssembler("resp_1")
    for d in VLLM_DELTAS:
        chunk = ChatCompletionChunk.model_validate(
            {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "m",
                "choices": [{"index": 0, "delta": {"tool_calls": [d]}}],
            }
        )
        for call in chunk.choices[0].delta.tool_calls or []:
            assembler.feed(call)
    assert json.loads(assembler.items[0]["arguments"]) == {"city": "Paris"}


def test_several_calls_keep_their_own_output_index_after_a_message() -> None:
    assembler = ToolCallAssembler("resp_1", first_output_index=1)
    deltas = [
        {"index": 0, "id": "a", "function": {"name": "get_weather", "arguments": ""}},
        {"index": 1, "id": "b", "function": {"name": "get_time"}},
        {"index": 0, "function": {"arguments": '{"city": "Oslo"}'}},
        {"index": 1, "function": {"arguments": '{"timezone": "UTC"}'}},
    ]
    events = [e for d in deltas for e in assembler.feed(d)] + assembler.finish()
    for e in events:
        SERVER_EVENT.validate_python(e)
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [(e["output_index"], e["name"], json.loads(e["arguments"])) for e in done] == [
        (1, "get_weather", {"city": "Oslo"}),
        (2, "get_time", {"timezone": "UTC"}),
    ]
    assert len({e["call_id"] for e in done}) == 2
    deltas_by_item = {e["item_id"]: e["output_index"] for e in events if e["type"].endswith(".delta")}
    assert sorted(deltas_by_item.values()) == [1, 2]


def test_arguments_before_the_name_are_held_and_a_call_without_arguments_gets_an_empty_object() -> None:
    assembler = ToolCallAssembler("resp_1")
    assert assembler.feed({"index": 0, "function": {"arguments": '{"a"'}}) == []  # nothing to name yet
    events = assembler.feed({"index": 0, "function": {"name": "f", "arguments": ": 1}"}})
    assert [e["type"] for e in events] == ["response.output_item.added"] + [
        "response.function_call_arguments.delta"
    ] * 2
    assert json.loads(assembler.finish()[0]["arguments"]) == {"a": 1}

    empty = ToolCallAssembler("resp_2")
    empty.feed({"index": 0, "function": {"name": "now"}})
    assert empty.finish()[0]["arguments"] == "{}"


def test_no_tool_calls_means_no_events() -> None:
    assembler = ToolCallAssembler("resp_1")
    assert assembler.finish() == [] and assembler.items == []


def test_the_models_calls_are_bounded() -> None:
    assembler = ToolCallAssembler("resp_1", limits=ToolLimits(max_calls=2, max_arguments=10))
    assembler.feed({"index": 0, "function": {"name": "f", "arguments": "{}"}})
    assembler.feed({"index": 1, "function": {"name": "g"}})
    with pytest.raises(ToolCallLimit):
        assembler.feed({"index": 2, "function": {"name": "h"}})
    with pytest.raises(ToolCallLimit):
        assembler.feed({"index": 1, "function": {"arguments": '{"x": "long!"}'}})
    assert [i["name"] for i in assembler.items] == ["f", "g"]  # what came before the limit is kept
    with pytest.raises(ToolCallLimit):
        ToolCallAssembler("r").feed({"index": "0", "function": {"name": "f"}})


# --- the client's items -------------------------------------------------------------------------------


def test_a_function_call_output_must_answer_a_known_call_and_is_bounded() -> None:
    item = parse_function_call_output(
        {"type": "function_call_output", "call_id": "call_1", "output": "17 C"}, {"call_1"}
    )
    assert (item["type"], item["call_id"], item["output"], item["status"]) == (
        "function_call_output",
        "call_1",
        "17 C",
        "completed",
    )
    assert item["id"].startswith("item_")
    given = parse_function_call_output({"id": "mine", "call_id": "call_1", "output": ""}, ["call_1"])
    assert given["id"] == "mine"

    cases = [
        ({"call_id": "call_2", "output": "x"}, "item.call_id", "invalid_tool_call_id"),
        ({"call_id": 1, "output": "x"}, "item.call_id", "invalid_value"),
        ({"call_id": "call_1", "output": {"t": 17}}, "item.output", "invalid_value"),
        ({"call_id": "call_1"}, "item.output", "invalid_value"),
        ({"call_id": "call_1", "output": "x" * 11}, "item.output", "string_above_max_length"),
        ({"call_id": "call_1", "output": "x", "id": 5}, "item.id", "invalid_value"),
    ]
    for raw, param, code in cases:
        error = bad(parse_function_call_output, raw, {"call_1"}, ToolLimits(max_output=10))
        assert (error.param, error.code) == (param, code), raw


def test_a_client_function_call_item_needs_json_object_arguments() -> None:
    tools = parse_tools([WEATHER])
    item = parse_function_call(
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city": "Rome"}'}, tools
    )
    SERVER_EVENT.validate_python({"type": "conversation.item.added", "event_id": "e", "item": item})
    assert parse_function_call({"call_id": "c1", "name": "get_weather"})["arguments"] == "{}"
    for raw, param in [
        ({"call_id": "c1", "name": "get_weather", "arguments": "{city: Rome}"}, "item.arguments"),
        ({"call_id": "c1", "name": "get_weather", "arguments": "[1]"}, "item.arguments"),
        (
            {"call_id": "c1", "name": "get_weather", "arguments": '{"a": ' + "[" * 5000 + "]" * 5000 + "}"},
            "item.arguments",
        ),
        ({"call_id": "c1", "name": "get_weather", "arguments": {"city": "Rome"}}, "item.arguments"),
        ({"call_id": "c1", "name": "get_time", "arguments": "{}"}, "item.name"),
        ({"call_id": "", "name": "get_weather"}, "item.call_id"),
        ({"name": "get_weather"}, "item.call_id"),
    ]:
        assert bad(parse_function_call, raw, tools).param == param, raw


# --- the conversation as the model reads it -----------------------------------------------------------


def _call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def test_native_history_joins_parallel_calls_and_answers_each_by_id() -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Oslo and Rome?"}]
    add_to_chat(messages, _call("c1", "get_weather", '{"city": "Oslo"}'))
    add_to_chat(messages, _call("c2", "get_weather", '{"city": "Rome"}'))
    add_to_chat(messages, {"type": "function_call_output", "call_id": "c1", "output": "5 C"})
    add_to_chat(messages, {"type": "function_call_output", "call_id": "c2", "output": "20 C"})
    assert messages[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
            {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
        ],
    }
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "5 C"},
        {"role": "tool", "tool_call_id": "c2", "content": "20 C"},
    ]
    add_to_chat(messages, _call("c3", "get_weather", "{}"))  # a later turn's call opens a new message
    assert len(messages) == 5 and messages[4]["tool_calls"][0]["id"] == "c3"


def test_text_history_states_the_call_and_its_result_as_the_users_words() -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Oslo?"}]
    call = _call("c1", "get_weather", '{"city": "Oslo"}')
    add_to_chat(messages, call, style="text")
    assert len(messages) == 1
    add_to_chat(messages, {"type": "function_call_output", "call_id": "c1", "output": "5 C"}, style="text", call=call)
    assert messages[1]["role"] == "user"
    assert messages[1]["content"].startswith('get_weather({"city": "Oslo"}) returned: 5 C\n')
    with pytest.raises(ValueError):
        add_to_chat(messages, {"type": "message"})


def test_function_tool_is_a_value() -> None:
    assert (
        FunctionTool("f", "", {"type": "object"}) == parse_tools([{"name": "f", "parameters": {"type": "object"}}])[0]
    )


@pytest.mark.parametrize(
    ("choice", "from_session", "after_output", "auto_calls", "runs"),
    [
        ("required", True, False, False, "required"),  # a user turn: the call is forced
        ("required", True, True, False, "none"),  # answering the output: no second forced call
        ("function:get_weather", True, True, True, "none"),
        ("required", False, True, True, "required"),  # the response.create itself asked for it
        ("auto", True, False, True, "auto"),
        ("auto", False, True, False, "none"),  # LiveKit's per-response auto after a call, on a CPU model
        ("none", True, True, True, "none"),
    ],
)
def test_the_choice_a_response_runs_with(
    choice: str, from_session: bool, after_output: bool, auto_calls: bool, runs: str
) -> None:
    assert response_choice(choice, from_session=from_session, after_output=after_output, auto_calls=auto_calls) == runs


def test_a_named_choice_may_come_before_its_tools_and_is_checked_when_a_response_starts() -> None:
    choice = parse_tool_choice({"type": "function", "name": "get_weather"})  # LiveKit: choice first, tools next
    check_tool_choice(choice, parse_tools([WEATHER]))
    error = bad(check_tool_choice, choice, parse_tools([{"name": "get_time"}]))
    assert (error.param, error.code) == ("response.tool_choice.name", "invalid_value")
    assert bad(check_tool_choice, "required", []).param == "response.tool_choice"
    check_tool_choice("auto", [])
    check_tool_choice("none", [])
