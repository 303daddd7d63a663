"""One realtime session's conversation: its items (user turns, typed items, assistant replies) and
the history the LLM gets, bounded.

Items are kept in order as `Item`s (the wire item's id, role and the chat message it stands for);
`messages()` is the history in OpenAI's chat shape. Past `max_turns` user/assistant pairs or
`max_history_tokens` (the served model's tokenizer, via /tokenize), the oldest go down to half of
each (`core.history`: the requests then share their beginning for vLLM's prefix cache).

Function calls and their outputs are items too (`Item.wire` is their realtime item, `gateway.realtime_tools`
checks them); `chat()` puts them into the model's history in the served model's style (`native` tool
messages, or `text` notes for a small model: `realtime_tools.add_to_chat`).

Client events handled here: `conversation.item.create` (text messages, `function_call`,
`function_call_output`; `previous_item_id` places it, `"root"` first), `conversation.item.retrieve`,
`conversation.item.delete`, `conversation.item.truncate` (what of the latest spoken reply the user heard).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from core.history import oldest_to_drop
from core.tokens import TokenCounter
from core.voice_client import Message
from gateway.realtime_events import BadEvent, assistant_item, event, new_id, user_item
from gateway.realtime_tools import ChatStyle, add_to_chat, parse_function_call, parse_function_call_output

Send = Callable[[dict[str, Any]], Awaitable[None]]
"""Sends one server event (raises ClientGone once the client has left)."""


_NOT_FIRST = ("assistant", "function_call", "function_call_output")
"""Roles an item trimmed down to the front of the history must not have (a reply or a call without its cause)."""


@dataclass(eq=False)
class Item:
    """One conversation item: its wire `id` and the chat `message` it stands for (its content may be
    filled later: a user turn's transcript, a reply as it streams)."""

    id: str
    message: Message
    """For a function_call / function_call_output item: role "function_call" / "function_call_output" and
    its arguments / output as content (what the bounds count); `wire` is then the item itself."""
    wire: dict[str, Any] | None = None
    """The realtime item as created (a message's, or a function call's); see `Conversation.wire`."""

    @property
    def function(self) -> bool:
        return self.message["role"] in ("function_call", "function_call_output")


@dataclass(eq=False)
class AssistantItem(Item):
    """The assistant item a response fills: its text so far, the pieces with the reply-audio time
    (ms) each starts at (`timed`), the audio sent, and when its first audio went out."""

    response_id: str = ""
    text: str = ""
    final: str | None = None
    timed: list[tuple[int, str]] = field(default_factory=list)
    audio_ms: int = 0
    first_audio_at: float | None = None
    opened: bool = False
    audio: bool = True
    output_index: int = 0

    def heard(self, audio_end_ms: int) -> str:
        """The pieces that start before `audio_end_ms` of the reply audio, joined."""
        return " ".join(text for start, text in self.timed if start < audio_end_ms)


class Conversation:
    """The items of one session, oldest first, and its bounds (see module docstring)."""

    def __init__(self, tokens: TokenCounter, send: Send, *, max_turns: int, max_history_tokens: int) -> None:
        self.tokens, self._send = tokens, send
        self.max_turns, self.max_history_tokens = max_turns, max_history_tokens
        self.items: list[Item] = []
        self.last_item_id: str | None = None  # the wire's previous_item_id for the next item
        self.truncatable: AssistantItem | None = None  # only the latest spoken reply can be truncated
        self.turn_ended_at: float | None = None  # perf_counter at the end of the user's last turn

    def messages(self) -> list[Message]:
        """The message items as chat messages, oldest first (function items left out)."""
        return [item.message for item in self.items if not item.function]

    def chat(self, style: ChatStyle, items: list[Item] | None = None) -> list[dict[str, Any]]:
        """`items` (default: the conversation) as chat-completions messages, function calls and outputs in
        `style` (`realtime_tools.add_to_chat`). An output whose call is no longer here is left out in the
        native style (a `tool` message must follow its call)."""
        items = self.items if items is None else items
        calls = {i.wire["call_id"]: i.wire for i in items if i.wire and i.wire.get("type") == "function_call"}
        out: list[dict[str, Any]] = []
        for item in items:
            if not item.function:
                out.append(dict(item.message))
            elif item.wire is not None:
                call = calls.get(item.wire.get("call_id"))
                if item.wire["type"] == "function_call_output" and call is None and style == "native":
                    continue
                add_to_chat(out, item.wire, style=style, call=call)
        return out

    def add(self, item: Item, *, after: str | None = None) -> None:
        """Add `item` at the end, or after the item with id `after` ("root": first); past max_turns pairs or
        max_history_tokens, drop the oldest down to half of each (function items count with the message before
        them). Raises BadEvent for an unknown `after`."""
        self.items.insert(self.index_after(after), item)
        # A function call and its output belong to the turn before them: counted and dropped with it, so a
        # call never loses its cause nor an output its call (a turn with calls counts as one item).
        turns: list[list[Item]] = []
        for i in self.items:
            if i.function and turns:
                turns[-1].append(i)
            else:
                turns.append([i])
        sizes = [sum(self.tokens.cached(i.message["content"]) for i in turn) for turn in turns]
        drop = oldest_to_drop(sizes, 2 * self.max_turns, self.max_history_tokens, keep_last=1)
        self.items = [i for turn in turns[drop:] for i in turn]
        while len(self.items) > 1 and self.items[0].message["role"] in _NOT_FIRST and self.items[0] is not item:
            self.items.pop(0)  # the history starts with the user (or a system item), as in the bots' history

    def index_after(self, after: str | None) -> int:
        """Where an item placed after the item `after` goes (None: the end, "root": the start)."""
        if after is None:
            return len(self.items)
        if after == "root":
            return 0
        for i, item in enumerate(self.items):
            if item.id == after:
                return i + 1
        raise BadEvent(
            f"previous_item_id '{after[:64]}' does not exist in the conversation.",
            param="previous_item_id",
            code="item_not_found",
        )

    def remove(self, item: Item) -> None:
        self.items = [i for i in self.items if i is not item]

    def find(self, item_id: Any, param: str = "item_id") -> Item:
        """The item with id `item_id`. Raises BadEvent `item_not_found` naming `param`."""
        for item in self.items:
            if item.id == item_id:
                return item
        raise BadEvent(
            f"Item with item_id '{str(item_id)[:64]}' not found in the conversation.",
            param=param,
            code="item_not_found",
        )

    def pending(self) -> tuple[list[Item], bool] | None:
        """(the items to answer, whether they end with function outputs) when the newest item is a user turn
        with words in it or a function_call_output, else None: there is nothing new to answer."""
        if not self.items:
            return None
        last = self.items[-1]
        if last.message["role"] == "function_call_output":
            return list(self.items), True
        if last.message["role"] != "user" or not last.message["content"]:
            return None
        return list(self.items), False

    def wire(self, item: Item) -> dict[str, Any]:
        """`item` as `conversation.item.retrieved` carries it (an audio turn with its transcript; june keeps
        no input audio, so its `audio` is left out)."""
        if item.function and item.wire is not None:
            return item.wire
        if isinstance(item, AssistantItem):
            return assistant_item(item.id, item.message["content"], status="completed", audio=item.audio)
        wire = dict(item.wire or {**user_item(item.id, []), "role": item.message["role"]})
        wire["content"] = [
            {**part, "transcript": item.message["content"]} if part.get("type") == "input_audio" else part
            for part in wire.get("content", [])
        ] or [{"type": "input_text", "text": item.message["content"]}]
        return wire

    async def add_audio_turn(self, item_id: str) -> Item:
        """A committed audio turn as a user item (its transcript filled in later), announced."""
        wire = user_item(item_id, [{"type": "input_audio", "transcript": None}])
        item = Item(item_id, {"role": "user", "content": ""}, wire)
        await self._announce(wire)
        self.add(item)  # added now: a response created meanwhile waits for its transcript
        return item

    async def item_create(self, data: dict[str, Any]) -> None:
        """`conversation.item.create`: a text message (user, assistant or system), a `function_call` (a
        client restoring history) or a `function_call_output` (answering a call), placed after
        `previous_item_id` (absent: at the end; "root": first)."""
        wire = data.get("item")
        if not isinstance(wire, dict):
            raise BadEvent("item must be an object.", param="item")
        after = data.get("previous_item_id")
        if after is not None and not isinstance(after, str):
            raise BadEvent("previous_item_id must be a string.", param="previous_item_id")
        given = wire.get("id")
        if given is not None and any(i.id == given for i in self.items):
            raise BadEvent(f"An item with id '{str(given)[:64]}' already exists.", param="item.id")
        self.index_after(after)  # an unknown previous_item_id is refused before anything changes
        kind = wire.get("type", "message")
        if kind == "function_call_output":
            out = parse_function_call_output(wire, self.call_ids())
            item = Item(out["id"], {"role": "function_call_output", "content": out["output"]}, out)
        elif kind == "function_call":
            call = parse_function_call(wire)
            if call["call_id"] in self.call_ids():
                raise BadEvent(
                    f"call_id '{call['call_id'][:64]}' is already in the conversation.", param="item.call_id"
                )
            item = Item(call["id"], {"role": "function_call", "content": call["arguments"]}, call)
        elif kind == "message":
            item = await self._message_item(wire)
        else:
            raise BadEvent(
                f"item.type '{str(kind)[:32]}' is not supported; use message, function_call or function_call_output.",
                param="item.type",
            )
        if item.function and len(item.message["content"]) > 4 * self.max_history_tokens:
            raise BadEvent(
                "The item is longer than the conversation may hold.", param="item", code="string_above_max_length"
            )
        await self.place(item, after)
        self.turn_ended_at = time.perf_counter()

    def call_ids(self) -> list[str]:
        """The call_ids of the conversation's function_call items."""
        return [i.wire["call_id"] for i in self.items if i.wire and i.wire.get("type") == "function_call"]

    async def _message_item(self, wire: dict[str, Any]) -> Item:
        role = wire.get("role")
        if role not in ("user", "assistant", "system"):
            raise BadEvent("item.role must be user, assistant or system.", param="item.role")
        content = wire.get("content")
        if not isinstance(content, list) or not content:
            raise BadEvent("item.content must be a non-empty list.", param="item.content")
        for i, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in ("input_image", "input_audio") and not (isinstance(part, dict) and part.get("transcript")):
                raise BadEvent(
                    f"Content of type {kind} is not supported in conversation.item.create: june's model reads "
                    "text (send spoken audio through input_audio_buffer.append).",
                    param=f"item.content[{i}].type",
                    code="unsupported_content_type",
                )
        found = [part.get("text") or part.get("transcript") for part in content if isinstance(part, dict)]
        texts = [t for t in found if isinstance(t, str)]
        if not texts or len(texts) != len(found):
            raise BadEvent(
                "Only text content (input_text / text / output_text) is supported in conversation.item.create.",
                param="item.content",
            )
        text = " ".join(texts).strip()
        if not text or await self.tokens.count(text) > self.max_history_tokens:
            raise BadEvent(
                "The item's text is empty or too long.", param="item.content", code="string_above_max_length"
            )
        given = wire.get("id")
        item_id = given if isinstance(given, str) and 0 < len(given) <= 64 else new_id("item")
        return Item(item_id, {"role": role, "content": text}, {**user_item(item_id, content), "role": role})

    async def place(self, item: Item, after: str | None = None) -> None:
        """Add a finished `item` (after `after`, see `add`) and announce it: conversation.item.added / .done
        with the id of the item before it."""
        index = self.index_after(after)
        previous = self.items[index - 1].id if index > 0 else None
        at_end = index == len(self.items)
        self.add(item, after=after)
        assert item.wire is not None
        await self._send(event("conversation.item.added", previous_item_id=previous, item=item.wire))
        await self._send(event("conversation.item.done", previous_item_id=previous, item=item.wire))
        if at_end:
            self.last_item_id = item.id

    async def retrieve(self, data: dict[str, Any]) -> None:
        """`conversation.item.retrieve` → `conversation.item.retrieved`."""
        item = self.find(data.get("item_id"))
        await self._send(event("conversation.item.retrieved", item=self.wire(item)))

    async def delete(self, data: dict[str, Any]) -> None:
        """`conversation.item.delete` → `conversation.item.deleted` (the model no longer sees it)."""
        item = self.find(data.get("item_id"))
        self.remove(item)
        if self.truncatable is item:
            self.truncatable = None
        if self.last_item_id == item.id:
            self.last_item_id = self.items[-1].id if self.items else None
        await self._send(event("conversation.item.deleted", item_id=item.id))

    async def truncate(self, data: dict[str, Any]) -> None:
        """`conversation.item.truncate`: the latest reply keeps what was heard up to `audio_end_ms`."""
        audio_end_ms = data.get("audio_end_ms")
        if not isinstance(audio_end_ms, int) or audio_end_ms < 0:
            raise BadEvent("audio_end_ms must be a non-negative integer.", param="audio_end_ms")
        item_id = data.get("item_id")
        item = self.truncatable
        if item is None or item.id != item_id:
            raise BadEvent(
                f"Item '{str(item_id)[:64]}' is not an assistant audio item of this session.",
                param="item_id",
                code="item_not_found",
            )
        item.message["content"] = item.heard(audio_end_ms)
        await self._send(
            event("conversation.item.truncated", item_id=item_id, content_index=0, audio_end_ms=audio_end_ms)
        )

    async def _announce(self, wire: dict[str, Any]) -> None:
        """conversation.item.added and .done for a finished item, after the previous one."""
        await self._send(event("conversation.item.added", previous_item_id=self.last_item_id, item=wire))
        await self._send(event("conversation.item.done", previous_item_id=self.last_item_id, item=wire))
        self.last_item_id = wire["id"]
