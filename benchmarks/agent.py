"""The coding agent: a small tool-calling loop (after mini-swe-agent's DefaultAgent).

Each step asks the model for a turn, runs the tool calls it made (natively, or parsed from a fenced
```bash block / a JSON `{"name", "arguments"}` object when the model has no tool calling) and feeds
the outputs back. Reasoning never goes back into the prompt: `reasoning`/`reasoning_content` are
dropped and `<think>…</think>` is cut from the content, as the Qwen3 model cards advise.

The run ends with one status: `submitted`, `step_limit`, `token_limit`, `context_limit` (the
endpoint refused the conversation as longer than the model's context), `time_limit`, `repeated`
(the same calls as the turn before, which gave the same output: with greedy decoding a small model
then loops until a limit; seen with Qwen2.5-Coder-0.5B for 14 turns and 800 s) or `error`.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from benchmarks.models import ContextFull, Model, ModelError, ModelTimeout, Reply, ToolCall
from benchmarks.sandbox import TASK_DIR
from benchmarks.tools import SCHEMAS, Submitted, Tools
from core.reasoning import strip_reasoning

Status = Literal["submitted", "step_limit", "token_limit", "context_limit", "time_limit", "repeated", "error"]

SYSTEM = f"""You are a careful software engineer working alone in a Linux sandbox without network access.
Your working directory is {TASK_DIR}. Use the tools: `bash` to run commands (for example python to test
your code), `editor` to view, create and edit files, and `submit` when the work is complete.
Make one tool call per turn and keep your replies short."""

FALLBACK = f"""You are a careful software engineer working alone in a Linux sandbox without network access.
Your working directory is {TASK_DIR}. You act by running shell commands: each reply must contain exactly
one fenced block
```bash
the commands to run
```
and you get its output back. Write files with a heredoc (cat <<'EOF' > file.py ... EOF); there is no
interactive editor. When the work is complete, reply with a block whose last line is `submit`."""

FORMAT_ERROR = "No tool call found. Call exactly one tool (bash, editor or submit); call submit when you are done."
FORMAT_ERROR_TEXT = (
    "No command found. Reply with exactly one ```bash block (closed with ```); its last line `submit` ends the task."
)

_BASH_BLOCK = re.compile(
    r"^```(?:bash|sh|shell)?[ \t]*\n(.*?)(?:^```|\Z)", re.S | re.M
)  # a reply cut at max_tokens may lack the closing fence
_OTHER_BLOCK = re.compile(r"^```(?!bash|sh|shell)\w+[ \t]*\n.*?^```[ \t]*$", re.S | re.M)


@dataclass(frozen=True)
class AgentConfig:
    """Limits and prompting for one task."""

    max_steps: int = 30
    """Model turns before the task ends with `step_limit`."""
    max_tokens: int = 200_000
    """Prompt + completion tokens summed over all turns before `token_limit`."""
    max_wall_s: float = 600.0
    """Seconds of wall-clock time (model and tools together) before `time_limit`."""
    native_tools: bool = True
    """Send tool schemas; False: the model writes fenced ```bash blocks instead."""


@dataclass
class Outcome:
    """How a run ended, with its usage and the full message history (reasoning kept aside per step)."""

    status: Status = "error"
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    error: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    reasoning: list[str | None] = field(default_factory=list)


def parse_fallback(content: str) -> list[ToolCall]:
    """Tool calls written into the text: a JSON {"name", "arguments"} object, else the first ```bash block
    (a last line `submit` adds a submit call), else a bare `submit`."""
    text = content.strip()
    if text.strip("`").strip() == "submit":
        return [ToolCall("text_0", "submit", "{}")]
    for candidate in (text, *re.findall(r"```(?:json)?\s*\n(\{.*?\})\s*```", text, re.S)):
        try:
            obj = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("name"), str):
            args = obj.get("arguments", obj.get("parameters", {}))
            return [ToolCall("text_0", obj["name"], args if isinstance(args, str) else json.dumps(args))]
    if match := _BASH_BLOCK.search(_OTHER_BLOCK.sub("", text)):
        lines = match.group(1).strip().splitlines()
        submit = bool(lines) and lines[-1].strip() == "submit"
        command = "\n".join(lines[:-1] if submit else lines).strip()
        calls = [ToolCall("text_0", "bash", json.dumps({"command": command}))] if command else []
        return calls + ([ToolCall("text_1", "submit", "{}")] if submit else [])
    return []


class Agent:
    """Runs one task: `run(task_text) -> Outcome`. `outcome` is live, so a crash still leaves a trajectory."""

    def __init__(self, model: Model, tools: Tools, config: AgentConfig | None = None) -> None:
        self.model = model
        self.tools = tools
        self.config = config or AgentConfig()
        self.outcome = Outcome()
        self._last_turn: tuple[list[tuple[str, str]], list[str]] | None = None

    def run(self, task_text: str) -> Outcome:
        out, cfg = self.outcome, self.config
        start = time.monotonic()
        system = SYSTEM if cfg.native_tools else FALLBACK
        out.messages += [{"role": "system", "content": system}, {"role": "user", "content": task_text}]
        try:
            while (status := self._limit(start)) is None:
                try:
                    reply = self.model.query(out.messages, SCHEMAS if cfg.native_tools else [], self._left(start))
                except ModelTimeout as e:
                    status, out.error = ("time_limit" if self._left(start) <= 1 else "error"), str(e)
                    break
                out.steps += 1
                out.prompt_tokens += reply.prompt_tokens
                out.completion_tokens += reply.completion_tokens
                out.reasoning.append(reply.reasoning)
                if (status := self._step(reply, start)) is not None:
                    break
        except ContextFull as e:  # the conversation outgrew the model: graded on what it left, like a limit
            status, out.error = "context_limit", str(e)
        except ModelError as e:
            status, out.error = "error", str(e)
        out.status = status
        out.wall_s = time.monotonic() - start
        return out

    def _left(self, start: float) -> float:
        return self.config.max_wall_s - (time.monotonic() - start)

    def _limit(self, start: float) -> Status | None:
        out, cfg = self.outcome, self.config
        if self._left(start) <= 0:
            return "time_limit"
        if out.prompt_tokens + out.completion_tokens >= cfg.max_tokens:
            return "token_limit"
        if out.steps >= cfg.max_steps:
            return "step_limit"
        return None

    def _step(self, reply: Reply, start: float) -> Status | None:
        """Record the turn and run its calls; "submitted" once `submit` was called, "repeated" when the
        turn repeated the previous one's calls and got the same output."""
        out = self.outcome
        content = strip_reasoning(reply.content)
        native = bool(reply.tool_calls)
        calls = reply.tool_calls or parse_fallback(content)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if native:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls
            ]
        out.messages.append(message)
        if not calls:
            out.messages.append(
                {"role": "user", "content": FORMAT_ERROR if self.config.native_tools else FORMAT_ERROR_TEXT}
            )
            return None
        submitted = False
        observations = []
        for call in calls:
            if submitted:
                observation = "skipped: already submitted"
            else:
                try:
                    observation = self.tools.execute(call.name, call.arguments, max(self._left(start), 1.0))
                except Submitted:
                    submitted, observation = True, "submitted"
            observations.append(observation)
            if native:
                out.messages.append({"role": "tool", "tool_call_id": call.id, "content": observation})
            else:
                out.messages.append({"role": "user", "content": f"Output:\n{observation}"})
        turn = ([(c.name, c.arguments) for c in calls], observations)
        repeated, self._last_turn = turn == self._last_turn, turn
        return "submitted" if submitted else "repeated" if repeated else None
