"""Dataset loaders and the grader's self-check: canonical solutions pass, empty ones fail, in the sandbox."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks import datasets
from benchmarks.cheats import CHEATS
from benchmarks.datasets import DatasetUnavailable
from benchmarks.grading import grade
from june.cli import app


def test_bundled_sizes() -> None:
    assert len(datasets.load("humaneval")) == 164
    assert len(datasets.load("dataframebench")) == 100
    assert len(datasets.load("dataframebench", split="val")) == 16


@pytest.mark.usefixtures("bwrap")
def test_selfcheck_cli_three_lines() -> None:
    """canonical all passed, empty and cheating none, through `june bench selfcheck` (12 tasks, one cheat
    each, to keep CI short; `june bench selfcheck` itself runs all 164 with every cheat)."""
    result = CliRunner().invoke(
        app, ["bench", "selfcheck", "--dataset", "humaneval", "--limit", "12", "--one-cheat-per-task"]
    )
    assert result.exit_code == 0, result.output
    cells = {
        ln.split("│")[1].strip(): ln.split("│")[2].strip() for ln in result.output.splitlines() if ln.count("│") >= 3
    }
    assert cells["canonical solutions"] == "12", result.output
    assert cells["empty solutions"] == "0", result.output
    assert cells[f"cheating solutions ({len(CHEATS)} kinds)"] == "0", result.output


@pytest.mark.usefixtures("bwrap")
def test_selfcheck_cli_dataframebench_subset() -> None:
    """The same on DataFrameBench val (2 tasks, one cheat each: CI's subset; every family of cheat is
    tried on a DataFrameBench task in test_integrity.py, and `june bench selfcheck --dataset
    dataframebench` runs them all)."""
    args = [
        "bench",
        "selfcheck",
        "--dataset",
        "dataframebench",
        "--split",
        "val",
        "--limit",
        "2",
        "--one-cheat-per-task",
        "--workers",
        "2",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    cells = {
        ln.split("│")[1].strip(): ln.split("│")[2].strip() for ln in result.output.splitlines() if ln.count("│") >= 3
    }
    assert cells["canonical solutions"] == "2", result.output
    assert cells["empty solutions"] == "0", result.output
    assert cells[f"cheating solutions ({len(CHEATS)} kinds)"] == "0", result.output


@pytest.mark.usefixtures("bwrap")
def test_grader_rejects_a_wrong_solution() -> None:
    task = datasets.load("humaneval")[0]
    wrong = task.starter + "    return not any(True for _ in numbers)\n"
    assert grade(task, task.canonical)[0]
    passed, output = grade(task, wrong)
    assert not passed and "AssertionError" in output


@pytest.mark.usefixtures("bwrap")
def test_dataframebench_task_with_installed_libraries() -> None:
    tasks = datasets.load("dataframebench", split="val")
    runnable = [t for t in tasks if all(importlib.util.find_spec(lib) for lib in t.meta["libs"] if lib != "polars")]
    assert runnable, "no DataFrameBench val task runs with the installed libraries"
    task = runnable[0]
    assert grade(task, task.canonical, wall_s=120)[0]
    assert not grade(task, task.starter, wall_s=120)[0]


@pytest.mark.usefixtures("bwrap")
def test_evalplus_file_differential_tests(tmp_path: Path) -> None:
    record = {
        "task_id": "Mbpp/2",
        "entry_point": "add",
        "prompt": '"""Add two numbers."""\n',
        "canonical_solution": "def add(a, b):\n    return a + b\n",
        "base_input": [[1, 2], [0.1, 0.2]],
        "plus_input": [[10**6, -3]],
        "atol": 0,
    }
    path = tmp_path / "MbppPlus.jsonl"
    path.write_text(json.dumps(record) + "\n")
    (task,) = datasets.load("mbpp+", path=path)
    assert grade(task, task.canonical)[0]
    assert not grade(task, task.starter)[0]
    assert not grade(task, "def add(a, b):\n    return a - b\n")[0]
    with pytest.raises(DatasetUnavailable, match="--data"):
        datasets.load("humaneval+")


def test_swebench_from_a_local_file_or_a_clear_error(tmp_path: Path) -> None:
    instance = {
        "instance_id": "astropy__astropy-12907",
        "repo": "astropy/astropy",
        "base_commit": "d16bfe0",
        "problem_statement": "Fix separability.",
        "patch": "diff --git a/x b/x",
        "test_patch": "diff --git a/t b/t",
        "FAIL_TO_PASS": "[]",
        "PASS_TO_PASS": "[]",
        "version": "4.3",
    }
    path = tmp_path / "lite.jsonl"
    path.write_text(json.dumps(instance) + "\n")
    (task,) = datasets.load("swebench-lite", path=path)
    assert task.id == "astropy__astropy-12907" and task.kind == "swebench" and task.meta["repo"] == "astropy/astropy"
    with pytest.raises(DatasetUnavailable, match="no file"):
        datasets.load("swebench-verified", path=tmp_path / "missing.json")
    if importlib.util.find_spec("datasets") is None:
        with pytest.raises(DatasetUnavailable, match="not available offline"):
            datasets.load("swebench-verified")
