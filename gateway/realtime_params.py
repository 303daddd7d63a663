"""What one realtime `response.create` asks for: its `response` fields checked against OpenAI's GA
bounds and merged over the session's config and tools (`response_params`).

See https://platform.openai.com/docs/api-reference/realtime-client-events/response/create.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from gateway.realtime_conversation import Conversation, Item
from gateway.realtime_events import BadEvent, SessionConfig, _obj, _str, new_id
from gateway.realtime_tools import ToolConfig, check_tool_choice

__all__ = ["ResponseParams", "response_params"]


@dataclass
class ResponseParams:
    """What one `response.create` asks for (`response` fields), checked; None / absent: the session's."""

    config: SessionConfig
    """The session config with this response's `instructions`, `output_modalities`, `max_output_tokens`."""
    tools: ToolConfig
    forced_here: bool = False
    """`tool_choice` came with this response.create (not from the session)."""
    metadata: dict[str, str] | None = None
    in_conversation: bool = True
    """False for `conversation: "none"`: out of band, nothing added to the conversation, no conversation events."""
    input: list[Item] | None = None
    """`input` (its items, references resolved): the context instead of the conversation."""


def response_params(
    response: Any, session: SessionConfig, tools: ToolConfig, conversation: Conversation
) -> ResponseParams:
    """Check `response.create`'s `response` object (None: all the `session`'s config and `tools`);
    `conversation` resolves `input`'s item references. Raises BadEvent naming the field."""
    fields = _obj(response, "response")
    for name in ("prompt", "reasoning"):
        if fields.get(name) is not None:
            raise BadEvent(f"response.{name} is not supported.", param=f"response.{name}")
    config = replace(session)
    if fields.get("instructions") is not None:
        config.instructions = _str(fields["instructions"], "response.instructions", limit=20000)
    if fields.get("output_modalities", fields.get("modalities")) is not None:
        modes = fields.get("output_modalities", fields.get("modalities"))
        if not isinstance(modes, list) or not modes or not set(modes) <= {"audio", "text"}:
            raise BadEvent("output_modalities must be ['audio'] or ['text'].", param="response.output_modalities")
        config.output_modalities = ["audio"] if "audio" in modes else ["text"]
    if "max_output_tokens" in fields:
        limit = fields["max_output_tokens"]
        if limit == "inf" or limit is None:
            config.max_output_tokens = None
        elif isinstance(limit, int) and not isinstance(limit, bool) and 1 <= limit <= 4096:
            config.max_output_tokens = limit
        else:
            raise BadEvent("max_output_tokens must be 1..4096 or 'inf'.", param="response.max_output_tokens")
    target = fields.get("conversation", "auto")
    if target not in ("auto", "none", None):
        raise BadEvent("response.conversation must be 'auto' or 'none'.", param="response.conversation")
    params = ResponseParams(
        config,
        tools.updated(fields, "response"),
        forced_here=fields.get("tool_choice") is not None,
        metadata=_metadata(fields.get("metadata")),
        in_conversation=target != "none",
    )
    if params.forced_here:
        check_tool_choice(params.tools.choice, params.tools.tools, "response.tool_choice")
    if fields.get("input") is not None:
        params.input = _input(fields["input"], conversation)
    return params


def _input(value: Any, conversation: Conversation) -> list[Item]:
    """response.input: message items (text) and `item_reference`s to conversation items."""
    if not isinstance(value, list) or len(value) > 64:
        raise BadEvent("response.input must be an array of at most 64 items.", param="response.input")
    items: list[Item] = []
    for i, raw in enumerate(value):
        param = f"response.input[{i}]"
        if not isinstance(raw, dict):
            raise BadEvent(f"{param} must be an object.", param=param)
        if raw.get("type") == "item_reference":
            items.append(conversation.find(raw.get("id"), param=f"{param}.id"))
            continue
        if raw.get("type", "message") != "message" or raw.get("role") not in ("user", "assistant", "system"):
            raise BadEvent(f"{param} must be a text message or an item_reference.", param=f"{param}.type")
        content = raw.get("content")
        parts = content if isinstance(content, list) else []
        texts = [p.get("text") or p.get("transcript") if isinstance(p, dict) else None for p in parts]
        words = [t for t in texts if isinstance(t, str)]
        if not words or len(words) != len(texts):
            raise BadEvent(f"{param}.content must hold text parts.", param=f"{param}.content")
        text = _str(" ".join(words), f"{param}.content", limit=20000)
        items.append(Item(new_id("item"), {"role": raw["role"], "content": text}))
    return items


def _metadata(value: Any) -> dict[str, str] | None:
    """response.metadata as OpenAI bounds it: ≤ 16 string pairs, keys ≤ 64 and values ≤ 512 characters."""
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or len(value) > 16
        or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512 for k, v in value.items()
        )
    ):
        raise BadEvent(
            "response.metadata must be at most 16 string pairs (keys ≤ 64, values ≤ 512 characters).",
            param="response.metadata",
        )
    return dict(value)
