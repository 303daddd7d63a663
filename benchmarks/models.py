"""The models the agent talks to: any OpenAI-compatible chat endpoint, or a deterministic script.

Both answer `query(messages, tools, timeout) -> Reply`; the agent never sees which one it has.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx

from core.priority import HEADER

ToolChoice = Literal["auto", "required", "none"]


class ModelError(RuntimeError):
    """The endpoint failed (HTTP error, timeout, bad payload) or a script ran out of steps."""


class ModelTimeout(ModelError):
    """The request did not finish within the time the agent had left."""


class ContextFull(ModelError):
    """The endpoint refused the conversation as longer than the model's context (a 400: OpenAI's
    `context_length_exceeded`, vLLM's "maximum context length is N tokens")."""


@dataclass
class ToolCall:
    """One requested tool call. `arguments` is the raw JSON text (models sometimes send invalid JSON)."""

    id: str
    name: str
    arguments: str


@dataclass
class Reply:
    """One assistant turn: visible content, tool calls, reasoning (kept for the trajectory only), token
    usage, and why generation stopped ("stop", "length" when cut at max_tokens, "tool_calls")."""

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None


class Model(Protocol):
    def query(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], timeout: float) -> Reply: ...


@dataclass
class OpenAIModel:
    """Chat completions on `base_url` (…/v1) with `model`; tool schemas (and `tool_choice`) are sent only
    when the agent passes some (`AgentConfig.native_tools` decides; without them it parses fenced blocks).

    `tool_choice="required"` suits endpoints whose models only call tools when forced (vLLM with
    Qwen2.5-Coder-0.5B never does with "auto").
    """

    base_url: str
    model: str
    api_key: str = "EMPTY"
    tool_choice: ToolChoice = "required"
    temperature: float = 0.0
    max_tokens: int = 2048
    extra_body: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import openai  # imported here: the scripted model and the tests of the sandbox need no SDK

        self._openai = openai
        # The openai SDK 3.x types `http_client` as an httpx2 client, and takes an httpx one as well
        # (openai/_httpx2.py, its legacy path), as core.voice gives it.
        http = httpx.Client()
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=self.api_key,
            max_retries=2,
            http_client=http,  # type: ignore[arg-type]
            default_headers={HEADER: "batch"},  # nobody waits on one benchmark request: live and bots go first
        )

    def query(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], timeout: float) -> Reply:
        kwargs: dict[str, Any] = {}
        if tools:
            kwargs = {"tools": tools, "tool_choice": self.tool_choice}
        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]  # the agent's JSON messages: the SDK's TypedDicts' shape
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                timeout=max(timeout, 1.0),
                extra_body=self.extra_body or None,
                **kwargs,
            )
        except self._openai.APITimeoutError as e:
            raise ModelTimeout(f"no reply within {timeout:.0f} s") from e
        except self._openai.BadRequestError as e:
            if e.code == "context_length_exceeded" or "maximum context length" in str(e):
                raise ContextFull(f"{type(e).__name__}: {e}") from e
            raise ModelError(f"{type(e).__name__}: {e}") from e
        except self._openai.OpenAIError as e:
            raise ModelError(f"{type(e).__name__}: {e}") from e
        if not response.choices:
            raise ModelError("the endpoint returned no choices")
        choice = response.choices[0]
        message = choice.message
        extra = message.model_extra or {}
        calls = []
        for i, c in enumerate(message.tool_calls or []):
            function = getattr(c, "function", None)  # a custom tool call carries none
            if function is not None:
                calls.append(ToolCall(c.id or f"call_{i}", function.name, function.arguments or "{}"))
        usage = response.usage
        return Reply(
            content=message.content or "",
            tool_calls=calls,
            reasoning=extra.get("reasoning_content") or extra.get("reasoning"),
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason,
        )


class ScriptedModel:
    """Replays a fixed list of turns, whatever it is asked: the deterministic model for tests and dry runs.

    Each step is a dict: `{"tool": NAME, "args": {...}}` for one tool call, `{"tool_calls": [{"tool",
    "args"}, ...]}` for several, and/or `"content"` / `"reasoning"` text; optional `prompt_tokens` /
    `completion_tokens` override the default count (characters / 4). Every query's messages are kept
    in `seen`. Running out of steps raises ModelError.
    """

    def __init__(self, steps: Sequence[dict[str, Any]]) -> None:
        self.steps = list(steps)
        self.seen: list[list[dict[str, Any]]] = []

    @classmethod
    def from_file(cls, path: Path) -> ScriptedModel:
        """A script from a JSON file holding the list of steps."""
        return cls(json.loads(Path(path).read_text()))

    def query(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], timeout: float) -> Reply:
        self.seen.append(json.loads(json.dumps(messages)))
        index = len(self.seen) - 1
        if index >= len(self.steps):
            raise ModelError(f"script exhausted after {len(self.steps)} steps")
        step = self.steps[index]
        wanted = step.get("tool_calls") or ([step] if "tool" in step else [])
        calls = [ToolCall(f"call_{index}_{i}", c["tool"], json.dumps(c.get("args", {}))) for i, c in enumerate(wanted)]
        content = step.get("content", "")
        prompt_chars = sum(len(str(m.get("content") or "")) for m in messages)
        return Reply(
            content=content,
            tool_calls=calls,
            reasoning=step.get("reasoning"),
            prompt_tokens=step.get("prompt_tokens", prompt_chars // 4),
            completion_tokens=step.get("completion_tokens", (len(content) + sum(len(c.arguments) for c in calls)) // 4),
            finish_reason=step.get("finish_reason", "stop"),
        )
