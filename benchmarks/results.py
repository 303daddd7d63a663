"""Results I/O of a `june bench run` folder DIR.

`results.jsonl`: one line per finished task (task_id, status, passed, verdict, grading (`isolated`,
adversarially robust, or `in-process`, not: `datasets.grading`), steps, prompt_tokens,
completion_tokens, wall_s, error; mode 0600), the last line of a task id winning; a rerun skips the
tasks already there (`benchmarks.batch.run_batch`). `trajectories/ID.json`: the task's messages,
reasoning, final solution and test output, with the record as `result`, written in `finally` so a
crashed task still leaves one (`finish`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from benchmarks import datasets
from benchmarks.datasets import Task

RESULTS = "results.jsonl"


def new_record(task: Task, **first: Any) -> dict[str, Any]:
    """`task`'s results.jsonl record before it runs: status "error", nothing passed or spent. `first`
    fields (e.g. ``mode="direct"``) stand right after task_id; the caller fills in the rest as it goes."""
    return {
        "task_id": task.id,
        **first,
        "status": "error",
        "passed": False,
        "verdict": None,
        "grading": datasets.grading(task),
        "steps": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "wall_s": 0.0,
        "error": None,
    }


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
