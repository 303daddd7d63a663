"""One realtime session's conversation: its items (user turns, typed items, assistant replies) and
the history the LLM gets, bounded.

Items are kept in order as `Item`s (the wire item's id, role and the chat message it stands for);
`messages()` is the history in OpenAI's chat shape. Past `max_turns` user/assistant pairs or
`max_history_tokens` (the served model's tokenizer, via /tokenize), the oldest go down to half of
each (`core.history`: the requests then share their beginning for vLLM's prefix cache). Adding a
new kind of item (function calls and their outputs, issue 26) means a new `Item` kind here and its
wire shape in `gateway.realtime_events`.

Client events handled here: `conversation.item.create` (text), `conversation.item.truncate` (what
of the latest spoken reply the user heard).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from core.history import oldest_to_drop
from core.tokens import TokenCounter
from core.voice_client import Message
from gateway.realtime_events import BadEvent, event, new_id, user_item

Send = Callable[[dict[str, Any]], Awaitable[None]]
"""Sends one server event (raises ClientGone once the client has left)."""


@dataclass(eq=False)
class Item:
    """One conversation item: its wire `id` and the chat `message` it stands for (its content may be
    filled later: a user turn's transcript, a reply as it streams)."""

    id: str
    message: Message


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
        """The history as chat messages, oldest first (the last one is the newest item)."""
        return [item.message for item in self.items]

    def add(self, item: Item) -> None:
        """Add `item`; past max_turns pairs or max_history_tokens, drop the oldest down to half of each."""
        self.items.append(item)
        sizes = [self.tokens.cached(i.message["content"]) for i in self.items]
        del self.items[: oldest_to_drop(sizes, 2 * self.max_turns, self.max_history_tokens, keep_last=1)]
        while len(self.items) > 1 and self.items[0].message["role"] == "assistant":
            self.items.pop(0)  # the conversation starts with the user, as in the bots' history

    def remove(self, item: Item) -> None:
        self.items = [i for i in self.items if i is not item]

    def user_turn(self) -> tuple[Message, list[Message]] | None:
        """(the newest item's message, the history before it) when the newest item is a user turn
        with words in it, else None: there is nothing new to answer."""
        if not self.items or self.items[-1].message["role"] != "user" or not self.items[-1].message["content"]:
            return None
        messages = self.messages()
        return messages[-1], messages[:-1]

    async def add_audio_turn(self, item_id: str) -> Item:
        """A committed audio turn as a user item (its transcript filled in later), announced."""
        item = Item(item_id, {"role": "user", "content": ""})
        wire = user_item(item_id, [{"type": "input_audio", "transcript": None}])
        await self._announce(wire)
        self.add(item)  # added now: a response created meanwhile waits for its transcript
        return item

    async def item_create(self, data: dict[str, Any]) -> None:
        """`conversation.item.create`: a text message item (user, assistant or system)."""
        wire = data.get("item")
        if not isinstance(wire, dict) or wire.get("type", "message") != "message":
            raise BadEvent("item must be a message item.", param="item.type")
        role = wire.get("role")
        if role not in ("user", "assistant", "system"):
            raise BadEvent("item.role must be user, assistant or system.", param="item.role")
        content = wire.get("content")
        if not isinstance(content, list) or not content:
            raise BadEvent("item.content must be a non-empty list.", param="item.content")
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
        item_id = given if isinstance(given, str) else new_id("item")
        self.add(Item(item_id, {"role": role, "content": text}))
        await self._announce({**user_item(item_id, content), "role": role})
        self.turn_ended_at = time.perf_counter()

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
