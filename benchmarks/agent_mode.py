"""`june bench run --mode agent` on one task: the tool-calling agent (benchmarks/agent.py) in a
sandbox, by default starting from direct mode's answer as a draft (benchmarks/direct.py).

Pass/fail comes from running the hidden tests on the final solution.py in fresh sandboxes
(`benchmarks.grading.grade`, after the agent's sandbox is gone), whatever the agent claimed; an agent
that hit a limit is graded on what it left. `verdict` is the grader's status: passed, failed, or
`<limit>_limit` when the tests hit a sandbox bound.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks import direct
from benchmarks.agent import Agent, AgentConfig, Outcome
from benchmarks.datasets import SOLUTION_FILE, Task
from benchmarks.examples import run_examples, run_written_calls
from benchmarks.grading import grade, missing_module
from benchmarks.models import Model, ModelError, Reply
from benchmarks.results import finish, new_record
from benchmarks.sandbox import TASK_DIR, Limits, Sandbox, throwaway
from benchmarks.tools import Tools


def instructions(task: Task, native_tools: bool = True, draft: str | None = None, checked: str | None = None) -> str:
    """The agent's task message: the dataset's prompt and what to leave in solution.py; with `draft`
    (the first answer, already in solution.py) it asks to test, fix and submit that instead, showing
    `checked`, the output of the docstring's examples run on it, when there is one."""
    where = f"{TASK_DIR}/{SOLUTION_FILE}"
    text = f"Complete the function `{task.entry_point}` in {where} so that it does what its docstring says.\n"
    if task.prompt.strip() != task.starter.strip():
        text += f"\nThe task:\n{task.prompt}\n"
    if draft is not None:
        text += f"\n{where} already contains your first answer:\n```python\n{draft}```\n"
        if checked:
            text += f"\nIts docstring's examples, run with doctest, failed:\n```\n{checked[-2000:]}\n```\n"
        run = "`bash` (python)" if native_tools else "python in a ```bash block"
        fix = "`editor`" if native_tools else "a heredoc"
        end = "call `submit`" if native_tools else "reply with a ```bash block containing only `submit`"
        # Double quotes outside: the model writes Python strings in single quotes ('Hi' broke the
        # single-quoted form on HumanEval/86, and the 1.5B then rewrote a correct draft).
        call = f'python -c "from solution import {task.entry_point}; print({task.entry_point}(...))"'
        return text + (
            f"\nSteps: 1. check it on the docstring's examples with {run} (`{call}`: import it first); "
            f"2. only if a check fails, fix the "
            f"file with {fix} (keep the signature); 3. {end}. Hidden tests will call the function."
        )
    text += f"\n{where} currently contains:\n```python\n{task.starter}```\n"
    if native_tools:
        text += (
            f"\nSteps: 1. call `editor` with command `create`, path `{SOLUTION_FILE}` and the complete file (imports, "
            "signature and a working body) as `file_text`; 2. optionally run it with `bash` (python) and fix it; "
            "3. call `submit`. Hidden tests will call the function."
        )
    else:
        text += (
            f"\nSteps: 1. write the complete file (imports, signature and a working body) with "
            f"`cat <<'EOF' > {SOLUTION_FILE}` ... `EOF` in a ```bash block; "
            "2. optionally run it with python and fix it; "
            "3. reply with a ```bash block containing only `submit`. Hidden tests will call the function."
        )
    return text


def _repair(
    task: Task,
    model: Model,
    first: Reply,
    failed: str,
    drafted: str,
    sandbox: Sandbox,
    config: AgentConfig,
    trajectory: dict[str, Any],
) -> tuple[Reply, bool] | None:
    """The repair turn (`direct.repair`) for a draft whose doctest examples failed: (its reply, whether
    the corrected code passes them). When it does, solution.py holds it; otherwise the draft is put
    back, so the agent goes on exactly as without the repair. None when the model could not be asked."""
    try:
        reply, code = direct.repair(task, model, first, failed, config.max_wall_s)
    except ModelError as e:
        trajectory["repair"] = {"error": str(e)}
        return None
    fixed = direct.program(task, code)
    sandbox.write(SOLUTION_FILE, fixed)
    check = run_examples(task, sandbox)
    passed = check is not None and check.ok
    trajectory["repair"] = {"reply": reply.content, "solution": fixed, "examples": check and check.output}
    if not passed:
        sandbox.write(SOLUTION_FILE, drafted)
    return reply, passed


def solve(
    task: Task,
    model: Model,
    config: AgentConfig,
    out_dir: Path,
    command_limits: Limits,
    draft: bool = False,
    draft_from: Path | None = None,
) -> dict[str, Any]:
    """One task end to end; never raises: a crash becomes status "error" with its message.

    With `draft`, the first step is direct mode's: one completion with the direct prompt, its code
    saved as solution.py (benchmarks/direct.py). When the docstring's examples (doctest's, or calls
    written with their results: benchmarks/examples.py) pass on it, it is submitted as is
    (`examples_passed` in the record). When doctest's examples fail, the model first gets one repair
    turn in the direct conversation (`direct.repair`); a corrected function that passes them is
    submitted (`repaired` in the record). Otherwise the agent gets doctest's failures (if any) and
    tests, fixes and submits the draft. A final solution.py that no longer defines the entry point
    (a small model overwriting the file with a snippet) is graded as the draft instead
    (`restored_draft` in the record). With `draft_from` (a greedy direct run's folder), the draft is
    the answer that run recorded for the task when it has one (`draft_from` in the trajectory's
    draft), instead of asking the model the same question again.
    """
    start = time.monotonic()
    record = new_record(task)
    trajectory: dict[str, Any] = {
        "task_id": task.id,
        "dataset": task.dataset,
        "config": {**config.__dict__, "draft": draft},
    }
    agent: Agent | None = None
    first: Reply | None = None
    fixes: list[Reply] = []
    try:
        with throwaway({SOLUTION_FILE: task.starter}, command_limits, hide=[out_dir]) as sandbox:
            agent = Agent(model, Tools(sandbox), config)
            solution_path = SOLUTION_FILE
            text, drafted, outcome = instructions(task, config.native_tools), None, None
            if draft:
                recorded = direct.recorded_answer(task, draft_from) if draft_from else None
                first, code = recorded or direct.answer(task, model, config.max_wall_s)
                drafted = direct.program(task, code)
                sandbox.write(SOLUTION_FILE, drafted)
                examples = run_examples(task, sandbox)
                shown = examples or run_written_calls(task, sandbox)
                trajectory["draft"] = {
                    "messages": direct.messages(task),
                    "reply": first.content,
                    "solution": drafted,
                    "examples": shown and shown.output,
                    "draft_from": str(draft_from) if recorded else None,
                }
                if shown is not None and shown.ok:  # more turns would only risk a passing answer
                    outcome, record["examples_passed"] = Outcome(status="submitted"), True
                # Only doctest's failures are shown: a written call can be a definition (benchmarks/examples.py).
                failed = examples.output if examples is not None and not examples.ok else None
                if failed is not None:
                    fix = _repair(task, model, first, failed, drafted, sandbox, config, trajectory)
                    if fix is not None:
                        fixes.append(fix[0])
                        if fix[1]:
                            outcome, record["repaired"] = Outcome(status="submitted"), True
                text = instructions(task, config.native_tools, drafted, failed)
            outcome = outcome or agent.run(text)
            try:  # never follows a link the agent put there (`ln -s /proc/self/environ solution.py`)
                solution = sandbox.read_bytes(solution_path).decode(errors="replace")
            except (OSError, ValueError) as e:
                solution, trajectory["solution_error"] = "", str(e)
        if drafted is not None and not direct.defines(solution, task.entry_point):
            solution, record["restored_draft"] = drafted, True
        result = grade(task, solution)
        record.update(status=outcome.status, passed=result.passed, verdict=result.status, error=outcome.error)
        trajectory.update(solution=solution, test_output=result.detail)
        if (module := missing_module(result.detail)) and not result.passed:
            record["error"] = f"environment: no module {module}"
    except Exception as e:  # noqa: BLE001 - one task's crash must never end the batch
        record["error"] = f"{type(e).__name__}: {e}"
        trajectory["traceback"] = traceback.format_exc()
    finally:
        if agent is not None:
            o = agent.outcome
            record.update(steps=o.steps, prompt_tokens=o.prompt_tokens, completion_tokens=o.completion_tokens)
            trajectory.update(messages=o.messages, reasoning=o.reasoning)
        for step in [first, *fixes] if first is not None else []:  # the draft (and its repair) are steps of their own
            record.update(
                steps=record["steps"] + 1,
                prompt_tokens=record["prompt_tokens"] + step.prompt_tokens,
                completion_tokens=record["completion_tokens"] + step.completion_tokens,
            )
        finish(record, trajectory, start, out_dir)
    return record
