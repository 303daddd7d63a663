"""`june bench run` and `june bench selfcheck`: the agent (or one plain completion per task, `--mode
direct`, see benchmarks/direct.py) on a dataset, graded in the sandbox.

Output of a run in DIR: `results.jsonl` (one line per finished task: task_id, status, passed, verdict,
grading (`isolated`, adversarially robust, or `in-process`, not: `datasets.grading`), steps,
prompt_tokens, completion_tokens, wall_s, error; mode 0600) and `trajectories/ID.json` (messages,
reasoning, final solution, test output), written in `finally` so a crashed task still leaves one. A rerun skips
tasks already in results.jsonl. Pass/fail comes from the harness running the hidden tests on the
final solution.py in fresh sandboxes (`grade`, after the agent's sandbox is gone), whatever the agent
claimed; an agent that hit a limit is graded on what it left. `verdict` is the grader's status:
passed, failed, or `<limit>_limit` when the tests hit a sandbox bound.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from benchmarks import datasets, direct, judge, replica
from benchmarks.agent import Agent, AgentConfig, Outcome
from benchmarks.cheats import CHEATS, family
from benchmarks.datasets import SOLUTION_FILE, DatasetUnavailable, Task
from benchmarks.examples import run_examples, run_written_calls
from benchmarks.models import Model, ModelError, OpenAIModel, Reply, ScriptedModel
from benchmarks.sandbox import TASK_DIR, Limits, Result, Sandbox, SandboxUnavailable, check_available, conceal, sweep, throwaway
from benchmarks.tools import Tools

RESULTS = "results.jsonl"
MODES = ("agent", "direct")
DIRECT_REPLY_TOKENS = 768
"""Direct mode's default max_tokens: EvalPlus's `max_new_tokens`."""
console = Console(stderr=True)


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
        return text + (f"\nSteps: 1. check it on the docstring's examples with {run} (`{call}`: import it first); "
                       f"2. only if a check fails, fix the "
                       f"file with {fix} (keep the signature); 3. {end}. Hidden tests will call the function.")
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
            f"`cat <<'EOF' > {SOLUTION_FILE}` ... `EOF` in a ```bash block; 2. optionally run it with python and fix it; "
            "3. reply with a ```bash block containing only `submit`. Hidden tests will call the function."
        )
    return text


class Grade(tuple):  # type: ignore[type-arg]
    """`(passed, detail)` as `grade` always returned (it still unpacks that way), plus `status`: passed,
    failed, or `<limit>_limit` when the tests hit one of the sandbox's bounds (wall, cpu, memory, ...)."""

    def __new__(cls, passed: bool, detail: str, status: str) -> Grade:
        self = super().__new__(cls, (passed, detail))
        self.status = status
        return self

    @property
    def passed(self) -> bool:
        return bool(self[0])

    @property
    def detail(self) -> str:
        return str(self[1])


_JUDGE_SOURCE = Path(judge.__file__).read_text()
_REPLICA_SOURCE = Path(replica.__file__).read_text()


def _feed(fd: int, data: bytes) -> threading.Thread:
    """Write `data` to a pipe and close it, in a thread (the reader may never read it all)."""

    def write() -> None:
        with contextlib.suppress(OSError), os.fdopen(fd, "wb") as f:
            f.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def _verdict(fd: int, nonce: str) -> bool:
    """Whether the runner wrote its verdict line for this nonce (non-blocking read of what is there)."""
    os.set_blocking(fd, False)
    data = b""
    with contextlib.suppress(BlockingIOError, OSError):
        while len(data) < 65536 and (chunk := os.read(fd, 65536)):
            data += chunk
    os.close(fd)
    return f"{judge.VERDICT} {nonce} passed" in data.decode(errors="replace").splitlines()


def _status(passed: bool, *results: Result) -> str:
    if passed:
        return "passed"
    limit = next((r.limit for r in results if r.limit not in (None, "output")), None)
    return f"{limit}_limit" if limit else "failed"


def grade(task: Task, solution: str, wall_s: float = 60.0) -> Grade:
    """Run the task's hidden tests on `solution` in fresh sandboxes: `(passed, output tail)` with `.status`.

    The verdict is a per-run random nonce the trusted runner writes to a pipe of its own after every
    check ran (`benchmarks.judge`); exit codes and output of the solution's code count for nothing.
    The tests run in a judge sandbox and the solution in another, talking over pipes: plain data for
    `check` tasks, values described by `benchmarks.replica` for `unittest` tasks (DataFrameBench),
    whose two sandboxes also share /tmp and the task dir (tests write files the solution reads).
    DataFrameBench tasks whose tests patch what the solution calls (`datasets.IN_PROCESS`) run their
    tests in the solution's process instead: not adversarially robust. The tests are never files the
    solution's user could read. Raises DatasetUnavailable for SWE-bench tasks (they need Docker).
    """
    if task.kind not in ("check", "unittest"):
        raise DatasetUnavailable(datasets.needs_docker(task.dataset))
    limits = Limits(wall_s=wall_s, cpu_s=int(wall_s), memory_mb=task.memory_mb)
    nonce = secrets.token_hex(16)
    verdict_in, verdict_out = os.pipe()
    blob: dict[str, Any] = {"source": _JUDGE_SOURCE, "nonce": nonce, "verdict_fd": verdict_out, "test": task.test,
                            "entry_point": task.entry_point, "prompt": task.prompt}
    boot = ["python", "-I", "-c", judge.BOOT]
    try:
        if task.kind == "unittest" and datasets.grading(task) == "in-process":
            with throwaway({SOLUTION_FILE: solution}, limits, prefix="june-grade-") as sandbox:
                blob.update(mode="run_unittest", preload=["numpy", "pandas", *task.meta.get("libs", [])])
                stdin_r, stdin_w = os.pipe()
                runner = sandbox.start(boot, stdin=stdin_r, pass_fds=(verdict_out,))
                for fd in (stdin_r, verdict_out):
                    os.close(fd)
                _feed(stdin_w, json.dumps(blob).encode())
                results = [runner.wait()]
                output = results[0].output
        else:
            with throwaway(limits=limits, prefix="june-grade-") as shared:
                if task.kind == "unittest":
                    shared.write(f"task/{SOLUTION_FILE}", solution)
                    candidate_box = judge_box = Sandbox(shared.workdir / "task", limits, tmp=shared.workdir)
                    blob.update(mode="judge_unittest", replica=_REPLICA_SOURCE, prompt=task.starter,
                                preload=["numpy", "pandas", "matplotlib.pyplot", *task.meta.get("libs", [])])
                    serve_args = [task.entry_point, f"{TASK_DIR}/{SOLUTION_FILE}", _REPLICA_SOURCE]
                    judged, served = _two_sandboxes(blob, boot, candidate_box, judge_box, serve_args, verdict_out)
                else:
                    shared.write(SOLUTION_FILE, solution)
                    with throwaway(limits=limits, prefix="june-judge-") as judge_box:
                        blob.update(mode="judge")
                        judged, served = _two_sandboxes(blob, boot, shared, judge_box, [task.entry_point], verdict_out)
                results = [judged, served]
                output = f"{judged.output}\n--- the solution's own output ---\n{served.output}"
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(verdict_in)
        raise
    passed = _verdict(verdict_in, nonce)
    return Grade(passed, output[-3000:], _status(passed, *results))


def _two_sandboxes(blob: dict[str, Any], boot: list[str], candidate_box: Sandbox, judge_box: Sandbox,
                   serve_args: list[str], verdict_out: int) -> tuple[Result, Result]:
    """The candidate (`judge.serve SERVE_ARGS`) and the judge (`blob`'s mode) talking over two pipes;
    closes `verdict_out` here. Returns both Results (the candidate killed once the judge is done)."""
    to_candidate_r, to_candidate_w = os.pipe()
    from_candidate_r, from_candidate_w = os.pipe()
    serve = ["python", "-I", "-c", f"{_JUDGE_SOURCE}\nserve(*sys.argv[1:])\n", *serve_args]
    candidate = candidate_box.start(serve, stdin=to_candidate_r, stdout=from_candidate_w)
    os.close(to_candidate_r)
    os.close(from_candidate_w)
    blob.update(to_candidate_fd=to_candidate_w, from_candidate_fd=from_candidate_r)
    stdin_r, stdin_w = os.pipe()
    try:
        runner = judge_box.start(boot, stdin=stdin_r, pass_fds=(to_candidate_w, from_candidate_r, verdict_out))
    finally:
        for fd in (stdin_r, to_candidate_w, from_candidate_r, verdict_out):
            os.close(fd)
    _feed(stdin_w, json.dumps(blob).encode())
    judged = runner.wait()
    candidate.kill()
    return judged, candidate.wait(timeout=10)


def missing_module(output: str) -> str | None:
    """The module a test run could not import (an environment gap, not a wrong answer), if any."""
    marker = "ModuleNotFoundError: No module named "
    line = next((ln for ln in output.splitlines() if marker in ln), None)
    return line.split(marker, 1)[1].strip("'\" ") if line else None


def write_private(path: Path, text: str, append: bool = False) -> None:
    """Write (or append) `text` to `path` with mode 0600, whatever the umask or an older file's mode."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "a" if append else "w", encoding="utf-8") as f:
        os.fchmod(fd, 0o600)
        f.write(text)


def private_dir(path: Path) -> Path:
    """`path` made (with parents) and set to mode 0700; returns it."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _repair(task: Task, model: Model, first: Reply, failed: str, drafted: str, sandbox: Sandbox, config: AgentConfig,
            trajectory: dict[str, Any]) -> tuple[Reply, bool] | None:
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


def solve(task: Task, model: Model, config: AgentConfig, out_dir: Path, command_limits: Limits, draft: bool = False,
          draft_from: Path | None = None) -> dict[str, Any]:
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
    record: dict[str, Any] = {"task_id": task.id, "status": "error", "passed": False, "verdict": None,
                              "grading": datasets.grading(task), "steps": 0,
                              "prompt_tokens": 0, "completion_tokens": 0, "wall_s": 0.0, "error": None}
    trajectory: dict[str, Any] = {"task_id": task.id, "dataset": task.dataset, "config": {**config.__dict__, "draft": draft}}
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
                trajectory["draft"] = {"messages": direct.messages(task), "reply": first.content, "solution": drafted,
                                       "examples": shown and shown.output,
                                       "draft_from": str(draft_from) if recorded else None}
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
    except Exception as e:  # one task's crash must never end the batch
        record["error"] = f"{type(e).__name__}: {e}"
        trajectory["traceback"] = traceback.format_exc()
    finally:
        if agent is not None:
            o = agent.outcome
            record.update(steps=o.steps, prompt_tokens=o.prompt_tokens, completion_tokens=o.completion_tokens)
            trajectory.update(messages=o.messages, reasoning=o.reasoning)
        for step in [first, *fixes] if first is not None else []:  # the draft (and its repair) are steps of their own
            record.update(steps=record["steps"] + 1, prompt_tokens=record["prompt_tokens"] + step.prompt_tokens,
                          completion_tokens=record["completion_tokens"] + step.completion_tokens)
        finish(record, trajectory, start, out_dir)
    return record


def finish(record: dict[str, Any], trajectory: dict[str, Any], start: float, out_dir: Path) -> None:
    """Stamp the task's wall seconds since `start` (time.monotonic) on `record` and write the
    trajectory, with the record as its `result`, to OUT_DIR/trajectories/ID.json."""
    record["wall_s"] = round(time.monotonic() - start, 3)
    trajectory["result"] = record
    folder = private_dir(out_dir / "trajectories")
    write_private(folder / f"{record['task_id'].replace('/', '_')}.json", json.dumps(trajectory, indent=1, default=str))


def parse_results(text: str) -> dict[str, dict[str, Any]]:
    """The task records of a results.jsonl text by task id, the last line of an id winning; lines
    that are not a record (a torn last line from a kill) are skipped."""
    by_id: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        try:
            record = json.loads(line)
            by_id[record["task_id"]] = record
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return by_id


class RateColumn(ProgressColumn):
    """Finished tasks per minute, over the whole run so far (tasks take minutes, so rich's default
    30-second speed window would mostly be empty)."""

    def render(self, task: Any) -> Text:
        elapsed = task.elapsed or 0.0
        return Text(f"{task.completed / elapsed * 60:.1f} tasks/min" if task.completed and elapsed else "- tasks/min")


def run_batch(tasks: Sequence[Task], solve_one: Callable[[Task], dict[str, Any]], out_dir: Path, workers: int) -> list[dict[str, Any]]:
    """Solve the tasks not yet in results.jsonl with `workers` threads; append one line per task as it ends."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / RESULTS
    text = results.read_text() if results.exists() else ""
    skip = set(parse_results(text))
    if text and not text.endswith("\n"):
        write_private(results, "\n", append=True)  # a kill mid-write left a torn line: keep new lines whole
    todo = [t for t in tasks if t.id not in skip]
    if skip:
        console.print(f"resuming: {len(tasks) - len(todo)} of {len(tasks)} tasks already done in {results}")
    records: list[dict[str, Any]] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               RateColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[score]}"))
    # The ETA's speed over the last hour, not rich's 30 s: one task can take minutes on a CPU model.
    start = time.monotonic()
    with Progress(*columns, console=console, speed_estimate_period=3600) as progress, ThreadPoolExecutor(max(workers, 1)) as pool:
        bar = progress.add_task("tasks", total=len(todo), score="")
        futures = {pool.submit(solve_one, task): task for task in todo}
        for future in as_completed(futures):
            try:
                record = future.result()
            except Exception as e:  # solve() catches everything; this guards a custom solve_one
                record = {"task_id": futures[future].id, "status": "error", "passed": False, "error": repr(e)}
            write_private(results, json.dumps(record) + "\n", append=True)  # only this thread writes
            records.append(record)
            passed = sum(r["passed"] for r in records)
            progress.update(bar, advance=1, score=f"passed {passed}/{len(records)}")
            if not console.is_terminal:  # a log file gets no live bar: one line per task instead
                rate = len(records) / max(time.monotonic() - start, 1e-9) * 60
                eta = (len(todo) - len(records)) / rate * 60 if rate else 0.0
                console.print(f"{len(records)}/{len(todo)} {record['task_id']} passed={record['passed']} "
                              f"{record.get('wall_s', 0):.0f} s; {rate:.1f} tasks/min, ETA {eta / 60:.0f} min, passed {passed}/{len(records)}")
    return records


def sampling(temperature: float, repetition_penalty: float | None) -> dict[str, Any]:
    """vLLM sampling fields sent besides `temperature`, so a run decodes as published evaluations do
    rather than with the server's generation-config defaults (june's Qwen2.5-Coder presets set the
    model card's top_k 20 and repetition_penalty 1.1, and a penalty on every token already seen, the
    prompt's included, keeps a small model from repeating the signature it was given): EvalPlus's
    top_p 0.95 and no top_k when sampling, `repetition_penalty` unless None (leave the server's)."""
    fields: dict[str, Any] = {"top_p": 0.95, "top_k": -1} if temperature > 0 else {}
    if repetition_penalty is not None:
        fields["repetition_penalty"] = repetition_penalty
    return fields


def parse_model(spec: str, api_key: str, tool_choice: str, max_tokens: int, temperature: float = 0.0,
                extra_body: dict[str, Any] | None = None) -> Callable[[], Model]:
    """A model factory from `scripted:FILE.json` (a fresh replay per task) or `BASE_URL/MODEL_NAME`
    (e.g. http://127.0.0.1:8000/v1/Qwen/Qwen3-30B-A3B; one shared client); `extra_body` goes into
    every request (e.g. `sampling(...)`)."""
    if spec.startswith("scripted:"):
        path = Path(spec.removeprefix("scripted:"))
        return lambda: ScriptedModel.from_file(path)
    if "/v1/" in spec:
        base, name = spec.split("/v1/", 1)
    else:
        parts = urlsplit(spec)
        base, name = f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")
    if not name or not base.startswith("http"):
        raise typer.BadParameter(f"--model wants BASE_URL/MODEL_NAME or scripted:FILE, got {spec!r}")
    shared = OpenAIModel(base_url=f"{base.rstrip('/')}/v1", model=name, api_key=api_key, tool_choice=tool_choice,  # type: ignore[arg-type]
                         max_tokens=max_tokens, temperature=temperature, extra_body=extra_body or {})
    return lambda: shared


def _load(dataset: str, split: str | None, data: Path | None, limit: int | None, task_ids: list[str] | None,
          shuffle: int | None = None) -> list[Task]:
    """The tasks to run; exits with status 2 and a message (before any model call) when they cannot be."""
    try:
        if dataset in datasets.NEEDS_DOCKER:
            raise DatasetUnavailable(datasets.needs_docker(dataset))
        check_available()
        sweep()  # what an earlier, killed run left behind
        tasks = datasets.load(dataset, split=split, path=data)
    except (DatasetUnavailable, SandboxUnavailable, ValueError) as e:
        console.print(f"[red]{e}")
        raise typer.Exit(2) from e
    if task_ids:
        tasks = [t for t in tasks if t.id in set(task_ids)]
    if shuffle is not None:  # a seeded order: a run stopped (or limited) early is a random sample
        random.Random(shuffle).shuffle(tasks)
    return tasks[:limit] if limit else tasks


def run(
    model: str = typer.Option(..., help="BASE_URL/MODEL_NAME of an OpenAI-compatible endpoint, or scripted:FILE.json"),
    out: Path = typer.Option(..., help="Output folder (results.jsonl, trajectories/); reruns resume"),
    mode: str = typer.Option("agent", help="agent: the tool-calling agent; direct: one chat completion per task, code extracted"),
    dataset: str = typer.Option("humaneval", help=f"One of: {', '.join(datasets.DATASETS)}"),
    split: str | None = typer.Option(None, help="DataFrameBench split: test (default) or val"),
    data: Path | None = typer.Option(None, help="Local dataset file (EvalPlus, SWE-bench)"),
    workers: int = typer.Option(4, help="Tasks in parallel"),
    limit: int | None = typer.Option(None, help="Only the first K tasks"),
    task: list[str] | None = typer.Option(None, help="Only these task ids (repeatable)"),
    shuffle: int | None = typer.Option(None, help="Run the tasks in a random order from this seed, so that a run stopped early (or --limit) is a random sample"),
    api_key: str = typer.Option("EMPTY", envvar=["JUNE_BENCH_API_KEY", "OPENAI_API_KEY"], help="Bearer key for the endpoint"),
    tool_choice: str = typer.Option("required", help="auto | required | none (small models may need required)"),
    native_tools: bool = typer.Option(True, help="Send tool schemas; --no-native-tools parses ```bash blocks"),
    draft: bool = typer.Option(True, help="Agent mode: the first step is direct mode's answer, saved as solution.py; the agent then tests, fixes and submits it"),
    draft_from: Path | None = typer.Option(None, help="Agent mode, greedy: take the draft from this direct run's recorded answers (same model and prompt) instead of asking again"),
    max_steps: int = typer.Option(30, help="Model turns per task"),
    max_tokens: int = typer.Option(200_000, help="Prompt+completion tokens per task"),
    max_wall: float = typer.Option(600.0, help="Seconds per task"),
    max_reply_tokens: int | None = typer.Option(None, help="max_tokens of each completion [default: agent 2048, direct 768 (EvalPlus)]"),
    temperature: float = typer.Option(0.0, help="Sampling temperature (0: greedy, as published pass@1 figures)"),
    samples: int = typer.Option(1, help="Direct mode: completions per task, for pass@k (needs --temperature > 0)"),
    repetition_penalty: float | None = typer.Option(1.0, help="vLLM repetition_penalty sent with every request (1.0: none, as published evaluations decode); --repetition-penalty 0 leaves the server's default"),
    command_timeout: float = typer.Option(60.0, help="Seconds per bash command"),
) -> None:
    """Run the coding agent (or plain completions, --mode direct) on a dataset and grade each task in the sandbox."""
    if mode not in MODES:
        raise typer.BadParameter(f"--mode is one of {', '.join(MODES)}, not {mode!r}")
    if samples < 1 or (samples > 1 and temperature <= 0):
        raise typer.BadParameter("--samples N > 1 needs --temperature > 0 (greedy samples are all the same)")
    if samples > 1 and mode != "direct":
        raise typer.BadParameter("--samples is for --mode direct")
    if draft_from is not None and (mode != "agent" or not draft or temperature > 0):
        raise typer.BadParameter("--draft-from is for greedy agent runs with a draft (--mode agent, --temperature 0)")
    if draft_from is not None and not (draft_from / "trajectories").is_dir():
        raise typer.BadParameter(f"{draft_from} holds no trajectories/ of a direct run", param_hint="--draft-from")
    tasks = _load(dataset, split, data, limit, task, shuffle)
    conceal(out, data, draft_from)  # inside a bound folder (the venv, say) they would otherwise be readable
    reply_tokens = max_reply_tokens or (DIRECT_REPLY_TOKENS if mode == "direct" else 2048)
    make_model = parse_model(model, api_key, tool_choice, reply_tokens, temperature,
                             sampling(temperature, repetition_penalty or None))
    if mode == "direct":
        direct_config = direct.DirectConfig(samples=samples, max_wall_s=max_wall)
        records = run_batch(tasks, lambda t: direct.solve(t, make_model(), direct_config, out), out, workers)
    else:
        config = AgentConfig(max_steps=max_steps, max_tokens=max_tokens, max_wall_s=max_wall, native_tools=native_tools)
        limits = Limits(wall_s=command_timeout, cpu_s=int(command_timeout))
        records = run_batch(tasks, lambda t: solve(t, make_model(), config, out, limits, draft, draft_from), out, workers)
    passed = sum(r["passed"] for r in records)
    console.print(f"{dataset}: {passed}/{len(records)} passed this run; `june bench report {out}` for the summary")


def selfcheck(
    dataset: str = typer.Option("humaneval", help=f"One of: {', '.join(datasets.DATASETS)}"),
    split: str | None = typer.Option(None, help="DataFrameBench split: test (default) or val"),
    data: Path | None = typer.Option(None, help="Local dataset file (EvalPlus)"),
    workers: int = typer.Option(max(os.cpu_count() or 1, 1) * 4, help="Sandboxes in parallel"),
    limit: int | None = typer.Option(None, help="Only the first K tasks"),
    all_cheats: bool = typer.Option(True, "--all-cheats/--one-cheat-per-task",
                                    help="Every cheat on every task, or each task one cheat in turn (faster)"),
) -> None:
    """Check the grader: canonical solutions must pass every task, empty ones and cheating ones none.

    Cheats are counted per family (`benchmarks.cheats.family`). On DataFrameBench tasks graded
    in-process (`datasets.IN_PROCESS`: not adversarially robust) a cheat that passes is listed, not
    counted as a failure of the self-check."""
    tasks = _load(dataset, split, data, limit, None)
    names = list(CHEATS)
    if all_cheats:
        cheating = [(name, t) for t in tasks for name in names]
    else:
        cheating = [(names[i % len(names)], t) for i, t in enumerate(tasks)]
    start = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        canonical = list(pool.map(lambda t: grade(t, t.canonical), tasks))
        empty = list(pool.map(lambda t: grade(t, t.starter), tasks))
        cheats = list(pool.map(lambda job: grade(job[1], CHEATS[job[0]](job[1])), cheating))
    env_gaps = {t.id: m for t, (ok, output) in zip(tasks, canonical) if not ok and (m := missing_module(output))}
    broken = [t.id for t, (ok, _) in zip(tasks, canonical) if not ok and t.id not in env_gaps]
    leaky = [t.id for t, (ok, _) in zip(tasks, empty) if ok]
    fooled = [f"{name} on {t.id}" for (name, t), (ok, _) in zip(cheating, cheats) if ok and datasets.grading(t) == "isolated"]
    weak = [f"{name} on {t.id}" for (name, t), (ok, _) in zip(cheating, cheats) if ok and datasets.grading(t) != "isolated"]
    in_process = [t for t in tasks if datasets.grading(t) != "isolated"]
    title = f"self-check: {dataset} ({len(tasks)} tasks, {len(in_process)} graded in-process, {time.monotonic() - start:.1f} s)"
    table = Table(title=title)
    for column in ("", "passed", "of"):
        table.add_column(column)
    table.add_row("canonical solutions", str(sum(ok for ok, _ in canonical)), str(len(tasks)))
    table.add_row("empty solutions", str(len(leaky)), str(len(tasks)))
    table.add_row(f"cheating solutions ({len(names)} kinds)", str(len(fooled)), str(len(cheating)))
    families: dict[str, list[bool]] = {}
    for (name, t), (ok, _) in zip(cheating, cheats):
        if datasets.grading(t) == "isolated":
            families.setdefault(family(name), []).append(bool(ok))
    for name, outcomes in families.items():
        table.add_row(f"  {name}", str(sum(outcomes)), str(len(outcomes)))
    if in_process:
        table.add_row("cheating solutions on in-process tasks (not robust)", str(len(weak)),
                      str(sum(datasets.grading(t) != "isolated" for _, t in cheating)))
    Console().print(table)
    if env_gaps:
        console.print(f"[yellow]{len(env_gaps)} tasks need modules not installed here: {sorted(set(env_gaps.values()))}")
    if weak:
        console.print(f"[yellow]cheats passing on tasks graded in-process (not adversarially robust): {weak}")
    if broken or leaky or fooled:
        console.print(f"[red]canonical failing: {broken}\nempty passing: {leaky}\ncheats passing: {fooled}")
        raise typer.Exit(1)
