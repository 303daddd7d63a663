"""`june bench run --mode direct`: one chat completion per task (or N samples), the code extracted
from the reply, graded by the same grader as the agent: the plain-completion baseline that published
HumanEval scores are measured with.

Prompt: EvalPlus's instruct prompt as its OpenAI provider sends it (evalplus 0.3.1: codegen.py,
provider/openai.py, gen/util/openai_request.py), the setup of the EvalPlus leaderboard.

Extraction: `sanitize` is evalplus.sanitize.sanitize re-done on the stdlib `ast` (same rules: the
longest span of lines that parses, then the imports and the entry point with the classes, functions
and assignments it reaches). Not the package itself: evalplus 0.3.1 installs and imports offline,
but `evalplus.sanitize` imports `evalplus.data`, hence `datasets`, and its requirements add 24
packages to the default install (google-generativeai, datasets, pyarrow, tree-sitter, ...) and
downgrade protobuf 7 -> 5 under the whole stack, for ~80 lines of logic. On the replies of a real
run both give the same code (checked once against evalplus 0.3.1 in a separate environment). Fenced blocks are read
first, all of them, so a class in one block and the function in the next both survive.
"""

from __future__ import annotations

import ast
import json
import re
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from benchmarks.datasets import Task
from benchmarks.grading import grade
from benchmarks.models import Model, ModelError, Reply
from benchmarks.results import finish, new_record

Status = Literal["answered", "truncated", "no_code", "error"]

SYSTEM = "You are a helpful assistant good at coding."
"""EvalPlus's system message for chat endpoints (gen/util/openai_request.py)."""
INSTRUCTION = (
    "Please provide a self-contained Python script that solves the following problem in a markdown code block:"
)
"""EvalPlus's `instruction_prefix` for instruct models (codegen.py)."""

# A reply cut at max_tokens may lack the closing fence.
_FENCE = re.compile(r"^[ \t]*```[ \t]*(\w*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.S | re.M)
_PYTHON_TAGS = {"", "python", "py", "python3"}


@dataclass(frozen=True)
class DirectConfig:
    """How each task is asked."""

    samples: int = 1
    """Completions per task (pass@k needs k <= samples; more than 1 only makes sense with temperature > 0)."""
    max_wall_s: float = 600.0
    """Seconds one completion may take."""


def messages(task: Task) -> list[dict[str, str]]:
    """The chat messages for `task`: EvalPlus's system message and instruction, then the task's prompt
    in a ```python block (as is when it already holds fenced blocks, e.g. DataFrameBench's)."""
    prompt = task.prompt.strip()
    body = prompt if "```" in prompt else f"```python\n{prompt}\n```"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"{INSTRUCTION}\n{body}"}]


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):  # ValueError: NUL bytes
        return False
    return True


def code_extract(text: str) -> str:
    """The span of whole lines of `text` that parses as Python and has the most non-blank lines (the
    first such span; "" when no line parses): evalplus.sanitize.code_extract, with the scan cut
    short where no longer span can exist."""
    lines = text.split("\n")
    nonblank = [0]
    for line in lines:
        nonblank.append(nonblank[-1] + bool(line.strip()))
    best, span = 0, (0, -1)
    for i in range(len(lines)):
        if nonblank[-1] - nonblank[i] <= best:
            break  # even every line from i on has no more non-blank lines than the best span
        for j in range(len(lines) - 1, i - 1, -1):
            count = nonblank[j + 1] - nonblank[i]
            if count <= best:
                break
            if _parses("\n".join(lines[i : j + 1])):
                best, span = count, (i, j)
                break
    return "\n".join(lines[span[0] : span[1] + 1])


def _names(node: ast.AST) -> set[str]:
    """Every identifier used in `node` (tree-sitter's `identifier` nodes: names, attributes, arguments)."""
    found: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            found.add(sub.attr)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(sub.name)
    return found


def _has_return(node: ast.AST) -> bool:
    return any(isinstance(sub, ast.Return) for sub in ast.walk(node))


def sanitize(code: str, entry_point: str | None = None) -> str:
    """The Python program in a model's reply, reduced to what `entry_point` needs (evalplus.sanitize).

    Keeps every top-level import, and the top-level classes, functions with a `return` and single
    assignments that `entry_point` reaches through the names it uses (the first definition of a
    name wins, as in EvalPlus); drops tests, prints and `__main__` blocks. Without `entry_point`
    every definition is kept. When nothing is left, the longest parsable span as is.
    """
    extracted = code_extract(code)
    if not extracted.strip():
        return ""
    lines = extracted.split("\n")
    imports: list[ast.stmt] = []
    definitions: dict[str, ast.stmt] = {}
    for node in ast.parse(extracted).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(node)
        elif isinstance(node, ast.ClassDef) or (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _has_return(node)
        ):
            definitions.setdefault(node.name, node)
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            definitions.setdefault(node.targets[0].id, node)
    keep = set(definitions)
    if entry_point:
        keep, queue = {entry_point}, [entry_point]
        while queue:
            name = queue.pop()
            for used in _names(definitions[name]) if name in definitions else ():
                if used in definitions and used not in keep:
                    keep.add(used)
                    queue.append(used)
    chosen = imports + [node for name, node in definitions.items() if name in keep]

    def source(node: ast.stmt) -> str:  # decorators included (EvalPlus drops decorated definitions)
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        return "\n".join(lines[first - 1 : node.end_lineno])

    sanitized = "\n".join(source(node) for node in sorted(chosen, key=lambda n: n.lineno)).strip()
    return sanitized or extracted


def extract(reply: str, entry_point: str) -> str:
    """The solution code in a chat reply: `sanitize` over the reply's Python fenced blocks joined
    (each cut to its longest parsable span) when that defines `entry_point`, else over the whole
    reply as EvalPlus does (no fences, or odd ones such as a ```python block opened inside a
    ```markdown one, which Qwen2.5-Coder-0.5B writes under a repetition penalty)."""
    blocks = [body for tag, body in _FENCE.findall(reply) if tag.lower() in _PYTHON_TAGS]
    if blocks and defines(code := sanitize("\n\n".join(code_extract(b) for b in blocks), entry_point), entry_point):
        return code
    return sanitize(reply, entry_point)


def defines(code: str, entry_point: str) -> bool:
    """Whether `code` defines `entry_point` at top level."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return any(
        isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == entry_point
        for n in tree.body
    )


def program(task: Task, code: str) -> str:
    """The solution graded for extracted `code`: the task's starter (its imports and helpers, e.g.
    HumanEval/38's `encode_cyclic`, which the hidden tests call) followed by the code, whose
    definition of the entry point comes last and so wins."""
    return f"{task.starter.rstrip()}\n\n\n{code}\n" if code.strip() else task.starter


def answer(task: Task, model: Model, timeout: float) -> tuple[Reply, str]:
    """One completion for `task` with the direct prompt: (the reply, the code extracted from it).
    Raises ModelError as `model.query` does."""
    reply = model.query(messages(task), [], timeout)
    return reply, extract(reply.content, task.entry_point)


REPAIR = (
    "Your function fails the examples in its docstring (doctest's report):\n```\n{failures}\n```\n"
    "Fix it: reply with the complete corrected function in one ```python block."
)
"""The repair turn's message, after the model's first answer in the same conversation."""


def repair(task: Task, model: Model, first: Reply, failures: str, timeout: float) -> tuple[Reply, str]:
    """One more turn of the direct conversation: the first answer's doctest `failures` go back to the
    model, which answers with a corrected function (self-debugging with unit-test feedback, Chen et
    al. 2023, https://arxiv.org/abs/2304.05128). (the reply, the code extracted from it); raises
    ModelError as `model.query` does."""
    conversation = [*messages(task), {"role": "assistant", "content": first.content},
                    {"role": "user", "content": REPAIR.format(failures=failures.strip()[-2000:])}]  # fmt: skip
    reply = model.query(conversation, [], timeout)
    return reply, extract(reply.content, task.entry_point)


def recorded_answer(task: Task, run_dir: Path) -> tuple[Reply, str] | None:
    """Direct mode's answer for `task` as a finished greedy direct run in `run_dir` recorded it
    (trajectories/ID.json): (the reply, its code), or None when that run has no usable answer (no
    such task, another prompt, several samples, or a reply cut at max_tokens, which the agent's
    larger reply budget would have continued). Token counts are the recorded ones, so an agent run
    reusing the answer still reports what the answer cost. The caller must run greedy, as the
    recorded run did: with temperature 0 the model would answer exactly this again."""
    path = run_dir / "trajectories" / f"{task.id.replace('/', '_')}.json"
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    samples, result = recorded.get("samples") or [], recorded.get("result") or {}
    if recorded.get("mode") != "direct" or recorded.get("messages") != messages(task) or len(samples) != 1:
        return None
    sample = samples[0]
    if sample.get("finish_reason") != "stop" or not isinstance(sample.get("reply"), str):
        return None
    reply = Reply(
        content=sample["reply"],
        prompt_tokens=int(result.get("prompt_tokens") or 0),
        completion_tokens=int(result.get("completion_tokens") or 0),
        finish_reason="stop",
    )
    return reply, extract(reply.content, task.entry_point)


def _status(reply: Reply, code: str, task: Task) -> Status:
    if reply.finish_reason == "length":
        return "truncated"
    return "answered" if defines(code, task.entry_point) else "no_code"


def solve(task: Task, model: Model, config: DirectConfig, out_dir: Path) -> dict[str, Any]:
    """`config.samples` completions for `task`, each extracted and graded; never raises (a crash
    becomes status "error"). The record is the agent's (task_id, status, passed, steps = completions,
    tokens, wall_s, error) plus `samples` and `correct` (how many passed) for pass@k; `status` and
    `passed` are the first sample's. trajectories/ID.json keeps each reply, its code and test output.
    """
    start = time.monotonic()
    record = {**new_record(task, mode="direct"), "samples": config.samples, "correct": 0}
    chat = messages(task)
    trajectory: dict[str, Any] = {
        "task_id": task.id,
        "dataset": task.dataset,
        "mode": "direct",
        "config": config.__dict__,
        "messages": chat,
        "samples": [],
    }
    try:
        for i in range(config.samples):
            reply, code = answer(task, model, config.max_wall_s)
            record["steps"] += 1
            record["prompt_tokens"] += reply.prompt_tokens
            record["completion_tokens"] += reply.completion_tokens
            result = grade(task, program(task, code))
            record["correct"] += result.passed
            trajectory["samples"].append(
                {
                    "reply": reply.content,
                    "finish_reason": reply.finish_reason,
                    "code": code,
                    "passed": result.passed,
                    "verdict": result.status,
                    "test_output": result.detail,
                }
            )
            if i == 0:
                record.update(status=_status(reply, code, task), passed=result.passed, verdict=result.status)
    except ModelError as e:
        record["error"] = str(e)
    except Exception as e:  # noqa: BLE001 - one task's crash must never end the batch
        record["error"] = f"{type(e).__name__}: {e}"
        trajectory["traceback"] = traceback.format_exc()
    finally:
        record["samples"] = min(record["samples"], record["steps"])  # what was really drawn (pass@k's n)
        finish(record, trajectory, start, out_dir)
    return record
