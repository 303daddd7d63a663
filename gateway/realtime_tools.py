"""Function calling on /v1/realtime: the GA tool shapes checked, turned into chat-completions tools for the
model, and the model's streamed chat-completions tool calls turned back into realtime `function_call` items.

Wire shapes follow the `openai` SDK's types (openai/types/realtime/): `RealtimeFunctionTool`
`{"type": "function", "name", "description", "parameters"}`, `RealtimeToolChoiceConfig` (`"auto"`,
`"none"`, `"required"` or `{"type": "function", "name"}`), `RealtimeConversationItemFunctionCall`,
`RealtimeConversationItemFunctionCallOutput`, `ResponseFunctionCallArgumentsDeltaEvent` / `...DoneEvent`.
Spec: https://platform.openai.com/docs/api-reference/realtime-client-events/session/update (session.tools),
https://platform.openai.com/docs/guides/realtime-conversations#function-calling.
docs/realtime-protocol.md says which events carry what and how vLLM streams tool calls.

Pure functions and one small class; no I/O. Bad client input raises `BadEvent` naming the param.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.realtime_events import BadEvent, _obj, _str, event, new_id

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""A function name as OpenAI's function tools allow it (chat completions and Realtime alike)."""

ToolChoice = Literal["auto", "none", "required"] | str
"""`auto`, `none`, `required`, or the name of one function the model must call (stored as `function:NAME`)."""

_MODES = ("auto", "none", "required")
_NAMED = "function:"


@dataclass(frozen=True)
class ToolLimits:
    """Bounds on what a client may declare and what the model may return (all counts and characters)."""

    max_tools: int = 64
    """Tools in one list (OpenAI allows 128 in chat completions; a small CPU model is lost long before)."""
    max_description: int = 4096
    """Characters of one tool's description."""
    max_schema_chars: int = 16384
    """Characters of one tool's `parameters` schema, serialised as compact JSON."""
    max_total_chars: int = 65536
    """Characters of the whole tools list, serialised: what every request to the model carries."""
    max_depth: int = 16
    """Nesting of objects and arrays in one schema."""
    max_calls: int = 8
    """Function calls in one response; past it ToolCallAssembler raises ToolCallLimit."""
    max_arguments: int = 32768
    """Characters of one call's JSON arguments, from the model or in a client's function_call item."""
    max_output: int = 65536
    """Characters of a function_call_output item's `output`."""


DEFAULT_LIMITS = ToolLimits()


@dataclass(frozen=True)
class FunctionTool:
    """One checked function tool."""

    name: str
    description: str
    parameters: dict[str, Any]
    """A JSON-schema object (`{"type": "object", ...}`)."""

    def wire(self) -> dict[str, Any]:
        """As the session object echoes it (RealtimeFunctionTool)."""
        return {"type": "function", "name": self.name, "description": self.description, "parameters": self.parameters}

    def chat(self) -> dict[str, Any]:
        """As a chat-completions `tools` entry."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


# --- what the client declares -------------------------------------------------------------------------


def parse_tools(value: Any, param: str = "session.tools", limits: ToolLimits = DEFAULT_LIMITS) -> list[FunctionTool]:
    """Check a `tools` list (session.update or response.create). `None` means no tools.

    Raises BadEvent naming the offending param (`session.tools[2].parameters`, ...) for a wrong type, an
    unsupported tool type (`mcp`: code `unsupported_tool_type`), a bad or repeated name, a schema that is
    not a JSON-schema object, or a list over the limits (code `tools_above_max_size` / `string_above_max_length`).
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadEvent(f"{param} must be an array of tools.", param=param)
    if len(value) > limits.max_tools:
        raise BadEvent(
            f"{param} has {len(value)} tools; at most {limits.max_tools} are allowed.",
            param=param,
            code="tools_above_max_size",
        )
    tools: list[FunctionTool] = []
    seen: set[str] = set()
    for i, raw in enumerate(value):
        tool = _tool(raw, f"{param}[{i}]", limits)
        if tool.name in seen:
            raise BadEvent(f"{param}[{i}].name '{tool.name}' is declared twice.", param=f"{param}[{i}].name")
        seen.add(tool.name)
        tools.append(tool)
    total = len(json.dumps([t.wire() for t in tools], separators=(",", ":")))
    if total > limits.max_total_chars:
        raise BadEvent(
            f"{param} is {total} characters as JSON; at most {limits.max_total_chars} are allowed.",
            param=param,
            code="tools_above_max_size",
        )
    return tools


def _tool(raw: Any, param: str, limits: ToolLimits) -> FunctionTool:
    if not isinstance(raw, dict):
        raise BadEvent(f"{param} must be an object.", param=param)
    kind = raw.get("type", "function")
    if kind != "function":
        raise BadEvent(
            f"{param}.type '{str(kind)[:32]}' is not supported; only 'function' tools are.",
            param=f"{param}.type",
            code="unsupported_tool_type",
        )
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise BadEvent(f"{param}.name must match {NAME_PATTERN.pattern}.", param=f"{param}.name")
    description = raw.get("description")
    description = "" if description is None else _str(description, f"{param}.description", limit=limits.max_description)
    parameters = _schema(raw.get("parameters"), f"{param}.parameters", limits)
    return FunctionTool(name=name, description=description, parameters=parameters)


def _schema(value: Any, param: str, limits: ToolLimits) -> dict[str, Any]:
    if value is None:
        return {"type": "object", "properties": {}}
    if not isinstance(value, dict):
        raise BadEvent(f"{param} must be a JSON-schema object.", param=param)
    if value.get("type", "object") != "object":
        raise BadEvent(f"{param}.type must be 'object': a function takes named arguments.", param=f"{param}.type")
    if _depth(value, limits.max_depth) > limits.max_depth:
        raise BadEvent(f"{param} is nested deeper than {limits.max_depth} levels.", param=param, code="schema_too_deep")
    try:
        size = len(json.dumps(value, separators=(",", ":"), allow_nan=False))
    except ValueError as e:  # NaN / Infinity have no place in a JSON schema
        raise BadEvent(f"{param} is not valid JSON: {e}", param=param) from e
    if size > limits.max_schema_chars:
        raise BadEvent(
            f"{param} is {size} characters as JSON; at most {limits.max_schema_chars} are allowed.",
            param=param,
            code="string_above_max_length",
        )
    properties = value.get("properties")
    if properties is not None and not isinstance(properties, dict):
        raise BadEvent(f"{param}.properties must be an object.", param=f"{param}.properties")
    required = value.get("required")
    if required is not None and (not isinstance(required, list) or not all(isinstance(r, str) for r in required)):
        raise BadEvent(f"{param}.required must be an array of strings.", param=f"{param}.required")
    return {"type": "object", **value}


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of dicts and lists, counted iteratively and stopping once past `limit` (no recursion
    for a hostile schema to exhaust)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def parse_tool_choice(
    value: Any, tools: Iterable[FunctionTool] | None = None, param: str = "session.tool_choice"
) -> ToolChoice:
    """Check a `tool_choice`: `auto` / `none` / `required`, `{"type": "function", "name": ...}` (GA), or the
    chat-completions form `{"type": "function", "function": {"name": ...}}`. With `tools` given, a named
    function must be one of them. Raises BadEvent; `mcp` choices get code `unsupported_tool_type`.

    A session.update should pass `tools=None` and leave the membership check to `check_tool_choice` when a
    response starts: LiveKit sends its tool_choice in one session.update and its tools in the next."""
    if isinstance(value, str):
        if value not in _MODES:
            raise BadEvent(f"{param} must be one of {', '.join(_MODES)} or a function.", param=param)
        return value
    choice = _obj(value, param) if value is not None else None
    if not choice:
        raise BadEvent(f"{param} must be one of {', '.join(_MODES)} or a function.", param=param)
    if choice.get("type") != "function":
        raise BadEvent(
            f"{param}.type '{str(choice.get('type'))[:32]}' is not supported; use 'function'.",
            param=f"{param}.type",
            code="unsupported_tool_type",
        )
    function = choice.get("function")
    name = function.get("name") if isinstance(function, dict) else choice.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise BadEvent(f"{param}.name must name a function.", param=f"{param}.name")
    choice_ = _NAMED + name
    if tools is not None:
        check_tool_choice(choice_, tools, param)
    return choice_


def check_tool_choice(choice: ToolChoice, tools: Iterable[FunctionTool], param: str = "response.tool_choice") -> None:
    """Raise BadEvent (param `PARAM.name`) when `choice` names a function that is not among `tools`, or is
    `required` with no tools at all (vLLM refuses both with a 400)."""
    names = {t.name for t in tools}
    if choice == "required" and not names:
        raise BadEvent(f"{param} is 'required' but there are no tools.", param=param)
    if choice.startswith(_NAMED) and choice.removeprefix(_NAMED) not in names:
        name = choice.removeprefix(_NAMED)
        raise BadEvent(f"{param}.name '{name}' is not one of the tools.", param=f"{param}.name")


def tool_choice_wire(choice: ToolChoice) -> str | dict[str, str]:
    """As the session object / response echo it."""
    if choice.startswith(_NAMED):
        return {"type": "function", "name": choice.removeprefix(_NAMED)}
    return choice


def chat_tool_choice(choice: ToolChoice) -> str | dict[str, Any]:
    """As a chat-completions `tool_choice`."""
    if choice.startswith(_NAMED):
        return {"type": "function", "function": {"name": choice.removeprefix(_NAMED)}}
    return choice


def chat_tools(tools: Iterable[FunctionTool], choice: ToolChoice) -> dict[str, Any]:
    """The chat-completions request fields for these tools: `{}` when there are none or the choice is `none`
    (so a model served without a tool parser is never sent tools it cannot answer), else `tools` and
    `tool_choice`."""
    listed = [t.chat() for t in tools]
    if not listed or choice == "none":
        return {}
    return {"tools": listed, "tool_choice": chat_tool_choice(choice)}


@dataclass
class ToolConfig:
    """A session's (or one response's) tools and tool choice, as `session.update` / `response.create` set them."""

    tools: list[FunctionTool] = field(default_factory=list)
    choice: ToolChoice = "auto"

    def updated(self, fields: Mapping[str, Any], param: str = "session") -> ToolConfig:
        """A copy with `fields`' `tools` / `tool_choice` applied (absent keys keep theirs; `tools: null` is none).
        Raises BadEvent naming `PARAM.tools[...]` / `PARAM.tool_choice`."""
        tools = parse_tools(fields["tools"], f"{param}.tools") if "tools" in fields else self.tools
        choice = self.choice
        if "tool_choice" in fields and fields["tool_choice"] is not None:
            choice = parse_tool_choice(fields["tool_choice"], param=f"{param}.tool_choice")
        return ToolConfig(tools, choice)

    def wire(self) -> dict[str, Any]:
        """`tools` and `tool_choice` as the session object and a response echo them."""
        return {"tools": [t.wire() for t in self.tools], "tool_choice": tool_choice_wire(self.choice)}


def response_choice(choice: ToolChoice, *, from_session: bool, after_output: bool, auto_calls: bool) -> ToolChoice:
    """The tool choice one response runs with (a documented deviation from OpenAI, docs/realtime-protocol.md).

    - A forced choice (`required` or a named function) that comes from the session, not from this
      `response.create`, is `none` for a response that answers function outputs (`after_output`): clients
      send a bare response.create after a tool output (the Agents SDK always), and a forced choice would
      call again, for ever.
    - `auto` is `none` when the served model's tool parser cannot call under `auto` (`auto_calls` False:
      Qwen2.5-Coder on CPU writes the call as JSON text instead, which would be spoken).
    """
    if choice == "auto" and not auto_calls:
        return "none"
    if after_output and from_session and choice not in ("auto", "none"):
        return "none"
    return choice


# --- what the client sends back -----------------------------------------------------------------------


def parse_function_call_output(
    item: Mapping[str, Any], known_calls: Iterable[str], limits: ToolLimits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """Check a `function_call_output` item of conversation.item.create and return it as the conversation
    keeps it (`{"id", "object", "type", "call_id", "output", "status": "completed"}`).

    `known_calls`: the call_ids of the conversation's function_call items; OpenAI checks that the call
    exists, so an unknown one is an error (param `item.call_id`, code `invalid_tool_call_id`)."""
    call_id = _str(item.get("call_id"), "item.call_id", limit=128)
    if call_id not in set(known_calls):
        raise BadEvent(
            f"No function_call with call_id '{call_id}' in the conversation.",
            param="item.call_id",
            code="invalid_tool_call_id",
        )
    output = _str(item.get("output"), "item.output", limit=limits.max_output)
    return {
        "id": _item_id(item),
        "object": "realtime.item",
        "type": "function_call_output",
        "call_id": call_id,
        "output": output,
        "status": "completed",
    }


def parse_function_call(
    item: Mapping[str, Any], tools: Iterable[FunctionTool] | None = None, limits: ToolLimits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """Check a `function_call` item a client creates (restoring history, as pipecat does) and return it as
    the conversation keeps it. `arguments` must be a JSON object in a string; with `tools` given, `name`
    must be one of them. Raises BadEvent (param `item.arguments`, `item.name`, `item.call_id`)."""
    name = item.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise BadEvent(f"item.name must match {NAME_PATTERN.pattern}.", param="item.name")
    if tools is not None and name not in {t.name for t in tools}:
        raise BadEvent(f"item.name '{name}' is not one of the session's tools.", param="item.name")
    call_id = _str(item.get("call_id"), "item.call_id", limit=128)
    if not call_id:
        raise BadEvent("item.call_id must not be empty.", param="item.call_id")
    arguments = _str(item.get("arguments", "{}"), "item.arguments", limit=limits.max_arguments)
    if not isinstance(_json_object(arguments), dict):
        raise BadEvent("item.arguments must be a JSON object in a string.", param="item.arguments")
    return function_call_item(_item_id(item), call_id, name, arguments, status="completed")


def _item_id(item: Mapping[str, Any]) -> str:
    item_id = item.get("id")
    if item_id is None:
        return new_id("item")
    return _str(item_id, "item.id", limit=64) or new_id("item")


def _json_object(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError):  # ~1000 nested brackets exhaust json's C decoder: not a ValueError
        return None


# --- what the model returns ---------------------------------------------------------------------------


def function_call_item(item_id: str, call_id: str, name: str, arguments: str, *, status: str) -> dict[str, Any]:
    """A `function_call` conversation item (RealtimeConversationItemFunctionCall)."""
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "function_call",
        "status": status,
        "name": name,
        "call_id": call_id,
        "arguments": arguments,
    }


def new_call_id() -> str:
    """A call id like OpenAI's (`call_` + 16 alphanumerics); june's own, whatever id vLLM gave the call."""
    return "call_" + uuid.uuid4().hex[:16]


class ToolCallLimit(Exception):
    """The model went past ToolLimits (too many calls, arguments too long): the response should end
    `incomplete` with the calls completed so far."""


@dataclass
class _Call:
    index: int
    output_index: int
    item_id: str
    call_id: str
    name: str = ""
    arguments: str = ""
    added: bool = False


@dataclass
class ToolCallAssembler:
    """Turns a chat-completions stream's `choices[0].delta.tool_calls` entries into realtime server events
    for one response.

    Feed each entry (a dict, or the SDK's ChoiceDeltaToolCall) to `feed`, which returns the events to send
    now: `response.output_item.added` once a call's name is known, then `response.function_call_arguments.delta`
    for each piece of arguments. `finish` returns, per call in order, `response.function_call_arguments.done`
    and `response.output_item.done` (status `completed`, the full arguments; `{}` when the model gave none).
    `items` are the finished function_call items for the conversation and `response.done`'s `output`.
    Conversation events (`conversation.item.added` / `.done` with `previous_item_id`) are the session's.

    `first_output_index`: output items the response already has (an assistant message before the calls).
    Raises ToolCallLimit past `limits.max_calls` calls or `limits.max_arguments` characters of arguments.
    """

    response_id: str
    first_output_index: int = 0
    limits: ToolLimits = DEFAULT_LIMITS
    _calls: dict[int, _Call] = field(default_factory=dict)

    def feed(self, tool_call: Any) -> list[dict[str, Any]]:
        """Events for one streamed tool-call delta (`{"index", "id"?, "function": {"name"?, "arguments"?}}`)."""
        index, name, arguments = _delta_fields(tool_call)
        call = self._calls.get(index)
        if call is None:
            if len(self._calls) >= self.limits.max_calls:
                raise ToolCallLimit(f"The model called more than {self.limits.max_calls} functions in one response.")
            call = _Call(index, self.first_output_index + len(self._calls), new_id("item"), new_call_id())
            self._calls[index] = call
        out: list[dict[str, Any]] = []
        if name and not call.added:
            call.name += name  # vLLM sends the whole name in one delta; OpenAI's own streams may split it
        if not call.added and call.name:
            call.added = True
            item = function_call_item(call.item_id, call.call_id, call.name, "", status="in_progress")
            out.append(
                event(
                    "response.output_item.added",
                    response_id=self.response_id,
                    output_index=call.output_index,
                    item=item,
                )
            )
            if call.arguments:  # arguments that came before the name
                out.append(self._delta(call, call.arguments))
        if arguments:
            if len(call.arguments) + len(arguments) > self.limits.max_arguments:
                raise ToolCallLimit(
                    f"A function call's arguments are longer than {self.limits.max_arguments} characters."
                )
            call.arguments += arguments
            if call.added:
                out.append(self._delta(call, arguments))
        return out

    def _delta(self, call: _Call, delta: str) -> dict[str, Any]:
        return event(
            "response.function_call_arguments.delta",
            response_id=self.response_id,
            item_id=call.item_id,
            output_index=call.output_index,
            call_id=call.call_id,
            delta=delta,
        )

    @property
    def items(self) -> list[dict[str, Any]]:
        """The function_call items so far (those with a name), completed, in output order."""
        return [
            function_call_item(c.item_id, c.call_id, c.name, c.arguments or "{}", status="completed")
            for c in self._ordered()
        ]

    def _ordered(self) -> list[_Call]:
        return [c for c in sorted(self._calls.values(), key=lambda c: c.output_index) if c.added]

    def finish(self) -> list[dict[str, Any]]:
        """The closing events of every call (arguments.done, output_item.done), in output order. A delta
        without a name never became a call and is dropped (its output index is not reused)."""
        out: list[dict[str, Any]] = []
        for call in self._ordered():
            arguments = call.arguments or "{}"
            out.append(
                event(
                    "response.function_call_arguments.done",
                    response_id=self.response_id,
                    item_id=call.item_id,
                    output_index=call.output_index,
                    call_id=call.call_id,
                    name=call.name,
                    arguments=arguments,
                )
            )
            item = function_call_item(call.item_id, call.call_id, call.name, arguments, status="completed")
            out.append(
                event(
                    "response.output_item.done", response_id=self.response_id, output_index=call.output_index, item=item
                )
            )
        return out


def _delta_fields(tool_call: Any) -> tuple[int, str, str]:
    if not isinstance(tool_call, Mapping):
        tool_call = tool_call.model_dump()  # the openai SDK's ChoiceDeltaToolCall
    index = tool_call.get("index", 0)
    function = tool_call.get("function") or {}
    name, arguments = function.get("name") or "", function.get("arguments") or ""
    if (
        isinstance(index, bool)
        or not isinstance(index, int)
        or not isinstance(name, str)
        or not isinstance(arguments, str)
    ):
        raise ToolCallLimit("The model's tool call delta is malformed.")
    return index, name, arguments


# --- the conversation as the model reads it ----------------------------------------------------------


ChatStyle = Literal["native", "text"]
"""How function calls reach the model: `native` as chat-completions `tool_calls` and `tool` messages (what a
model trained on tool use reads best), `text` as plain notes (what a small model answers from in spoken words:
Qwen2.5-Coder-0.5B repeats the call as JSON after a `tool` message; docs/realtime-protocol.md has the runs)."""


def add_to_chat(
    messages: list[dict[str, Any]],
    item: Mapping[str, Any],
    *,
    style: ChatStyle = "native",
    call: Mapping[str, Any] | None = None,
) -> None:
    """Append a function_call or function_call_output item to chat-completions `messages`.

    `native`: consecutive function_call items join one assistant message's `tool_calls`, as a model that
    called several functions in one turn wrote them; an output becomes a `tool` message with its call's id.
    `text`: a call adds nothing; its output becomes a user note naming `call` (the function_call item
    with the output's call_id) and asking for a spoken answer.
    Raises ValueError for another item type (messages are the session's).
    """
    if item["type"] == "function_call":
        if style == "text":
            return
        entry = {
            "id": item["call_id"],
            "type": "function",
            "function": {"name": item["name"], "arguments": item.get("arguments") or "{}"},
        }
        last = messages[-1] if messages else None
        if last is not None and last.get("role") == "assistant" and last.get("tool_calls") and not last.get("content"):
            last["tool_calls"].append(entry)
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [entry]})
    elif item["type"] == "function_call_output":
        if style == "native":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
            return
        called = f"{call['name']}({call.get('arguments') or '{}'})" if call else "The function"
        # As the user's words: Qwen2.5-Coder-0.5B used the result in 11 of 12 runs so, in 8 of 12 as a system note.
        messages.append(
            {
                "role": "user",
                "content": f"{called} returned: {item['output']}\n"
                "Answer my question with this result in plain spoken words, without JSON.",
            }
        )
    else:
        raise ValueError(f"not a function call item: {item['type']}")
