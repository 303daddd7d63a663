"""Resuming: a killed `june bench run` picks up where it stopped, and finished tasks are skipped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from benchmarks import datasets
from benchmarks.agent import AgentConfig
from benchmarks.agent_mode import solve
from benchmarks.batch import run_batch
from benchmarks.models import ScriptedModel
from benchmarks.results import RESULTS
from benchmarks.sandbox import Limits

pytestmark = pytest.mark.usefixtures("bwrap")


def lines(out: Path) -> list[dict]:
    """The whole records in results.jsonl (a torn line from a kill is not one)."""
    records = []
    for line in (out / RESULTS).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def test_finished_tasks_are_skipped(tmp_path: Path) -> None:
    tasks = datasets.load("humaneval")[:3]
    (tmp_path / RESULTS).write_text(
        json.dumps({"task_id": tasks[0].id, "status": "submitted", "passed": True}) + '\n{"torn'
    )
    models: list[ScriptedModel] = []

    def solve_one(task: datasets.Task) -> dict:
        models.append(ScriptedModel([{"tool": "submit"}]))
        return solve(task, models[-1], AgentConfig(), tmp_path, Limits())

    records = run_batch(tasks, solve_one, tmp_path, workers=2)
    assert sorted(r["task_id"] for r in records) == [t.id for t in tasks[1:]]
    assert len(models) == 2
    assert sorted(r["task_id"] for r in lines(tmp_path)) == sorted(t.id for t in tasks)


def test_cli_run_killed_midway_resumes(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"tool": "bash", "args": {"command": "sleep 1"}}, {"tool": "submit"}]))
    out = tmp_path / "run"
    argv = [
        sys.executable,
        "-m",
        "june",
        "bench",
        "run",
        "--model",
        f"scripted:{script}",
        "--limit",
        "3",
        "--no-draft",
        "--workers",
        "1",
        "--out",
        str(out),
    ]
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not ((out / RESULTS).exists() and lines(out)) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    done_before = {r["task_id"] for r in lines(out)}
    assert 1 <= len(done_before) < 3
    second = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert f"{len(done_before)} of 3 tasks already done" in second.stderr
    ids = [r["task_id"] for r in lines(out)]
    assert sorted(ids) == sorted(f"HumanEval/{i}" for i in range(3))  # each task exactly once
    assert all(r["status"] == "submitted" for r in lines(out))
    assert len(list((out / "trajectories").glob("*.json"))) == 3
    # the killed run's task dir (a tmpfs mount as root) and cgroups were swept by the second run
    assert not list(Path(tempfile.gettempdir()).glob(f"june-*-{first.pid}-*"))
