"""The batch loop of `june bench run` and `june bench selfcheck`: the tasks to run (`load_tasks`),
then solved in parallel threads with a live progress bar (`run_batch`), each record appended to
results.jsonl as its task ends; a rerun resumes.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

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
from rich.text import Text

from benchmarks import datasets
from benchmarks.datasets import DatasetUnavailable, Task
from benchmarks.results import RESULTS, parse_results, write_private
from benchmarks.sandbox import SandboxUnavailable, check_available, sweep

console = Console(stderr=True)


def load_tasks(
    dataset: str,
    split: str | None,
    data: Path | None,
    limit: int | None,
    task_ids: list[str] | None,
    shuffle: int | None = None,
) -> list[Task]:
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


class RateColumn(ProgressColumn):
    """Finished tasks per minute, over the whole run so far (tasks take minutes, so rich's default
    30-second speed window would mostly be empty)."""

    def render(self, task: Any) -> Text:
        elapsed = task.elapsed or 0.0
        return Text(f"{task.completed / elapsed * 60:.1f} tasks/min" if task.completed and elapsed else "- tasks/min")


def run_batch(
    tasks: Sequence[Task], solve_one: Callable[[Task], dict[str, Any]], out_dir: Path, workers: int
) -> list[dict[str, Any]]:
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
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[score]}"),
    )
    # The ETA's speed over the last hour, not rich's 30 s: one task can take minutes on a CPU model.
    start = time.monotonic()
    with (
        Progress(*columns, console=console, speed_estimate_period=3600) as progress,
        ThreadPoolExecutor(max(workers, 1)) as pool,
    ):
        bar = progress.add_task("tasks", total=len(todo), score="")
        futures = {pool.submit(solve_one, task): task for task in todo}
        for future in as_completed(futures):
            try:
                record = future.result()
            except Exception as e:  # noqa: BLE001 - solve() catches everything; this guards a custom solve_one
                record = {"task_id": futures[future].id, "status": "error", "passed": False, "error": repr(e)}
            write_private(results, json.dumps(record) + "\n", append=True)  # only this thread writes
            records.append(record)
            passed = sum(r["passed"] for r in records)
            progress.update(bar, advance=1, score=f"passed {passed}/{len(records)}")
            if not console.is_terminal:  # a log file gets no live bar: one line per task instead
                rate = len(records) / max(time.monotonic() - start, 1e-9) * 60
                eta = (len(todo) - len(records)) / rate * 60 if rate else 0.0
                console.print(
                    f"{len(records)}/{len(todo)} {record['task_id']} passed={record['passed']} "
                    f"{record.get('wall_s', 0):.0f} s; {rate:.1f} tasks/min, ETA {eta / 60:.0f} min, "
                    f"passed {passed}/{len(records)}"
                )
    return records
