"""`june bench report`: pass@1 with a Wilson interval, statuses, a plot, and two runs side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.report import load, summarize, wilson
from june.cli import app


def test_wilson_interval() -> None:
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(164, 164)[1] == 1.0 and wilson(164, 164)[0] == pytest.approx(0.9771, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def write_run(path: Path, passed: list[bool], status: str = "submitted") -> Path:
    path.mkdir()
    rows = [
        {
            "task_id": f"T/{i}",
            "status": status if ok else "step_limit",
            "passed": ok,
            "steps": 3,
            "prompt_tokens": 1000 + i,
            "completion_tokens": 100,
            "wall_s": 2.0 + i,
            "error": None,
        }
        for i, ok in enumerate(passed)
    ]
    rows.append({**rows[0], "passed": not rows[0]["passed"]})  # a later line for the same task wins
    (path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_summary_and_cli_comparison(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", [False, True, True, False])  # T/0 flipped to passed: 3/4
    b = write_run(tmp_path / "b", [True, False, False, False])  # T/0 flipped to failed: 0/4
    summary = summarize(load(a))
    assert (summary["tasks"], summary["passed"], summary["statuses"]) == (4, 3, {"submitted": 2, "step_limit": 2})
    assert summary["wall_s"] == pytest.approx((3.5, 3.5, 4.85))  # mean, p50, p95
    result = CliRunner().invoke(app, ["bench", "report", str(a), str(b)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "75.0% (3/4)" in result.output and "0.0% (0/4)" in result.output
    assert "passed only in" in result.output and "T/1" in result.output
    assert (a / "report.png").stat().st_size > 1000 and (b / "report.png").exists()


def test_missing_run_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "report", str(tmp_path)])
    assert result.exit_code == 2 and "no results.jsonl" in result.output
