"""Grading: a task's hidden tests run on a solution in fresh sandboxes, whatever the solver claimed.

`grade` is the one grading entry point of `june bench run` (both modes) and `june bench selfcheck`.
Its verdict is a per-run nonce the trusted runner (`benchmarks.judge`) writes to a pipe of its own;
`Grade.status` is passed, failed, or `<limit>_limit` when the tests hit a sandbox bound.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
from pathlib import Path
from typing import Any

from benchmarks import datasets, judge, replica
from benchmarks.datasets import SOLUTION_FILE, DatasetUnavailable, Task
from benchmarks.sandbox import TASK_DIR, Limits, Result, Sandbox, throwaway


class Grade(tuple[bool, str]):
    """`(passed, detail)` as `grade` always returned (it still unpacks that way), plus `status`: passed,
    failed, or `<limit>_limit` when the tests hit one of the sandbox's bounds (wall, cpu, memory, ...)."""

    status: str

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
    blob: dict[str, Any] = {
        "source": _JUDGE_SOURCE,
        "nonce": nonce,
        "verdict_fd": verdict_out,
        "test": task.test,
        "entry_point": task.entry_point,
        "prompt": task.prompt,
    }
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
                    blob.update(
                        mode="judge_unittest",
                        replica=_REPLICA_SOURCE,
                        prompt=task.starter,
                        preload=["numpy", "pandas", "matplotlib.pyplot", *task.meta.get("libs", [])],
                    )
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


def _two_sandboxes(
    blob: dict[str, Any],
    boot: list[str],
    candidate_box: Sandbox,
    judge_box: Sandbox,
    serve_args: list[str],
    verdict_out: int,
) -> tuple[Result, Result]:
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
