"""A real run: 3 HumanEval tasks, the CPU vLLM (Qwen2.5-Coder-0.5B) behind the gateway, via the CLI.

Any score is fine; the run must complete with a status, real token counts and a trajectory per task.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from june.cli import app

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("bwrap")]


def test_three_humaneval_tasks_against_the_cpu_model(gateway_url: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["bench", "run", "--model", f"{gateway_url}/v1/qwen2.5-coder-0.5b-instruct", "--limit", "3",
            "--workers", "3", "--max-steps", "2", "--max-reply-tokens", "200", "--max-wall", "150", "--out", str(out)]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["task_id"] for r in records) == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    for record in records:
        assert record["status"] in {"submitted", "step_limit", "token_limit", "time_limit"}, record
        assert record["steps"] >= 1 and record["prompt_tokens"] > 0 and record["completion_tokens"] > 0
        trajectory = json.loads((out / "trajectories" / f"{record['task_id'].replace('/', '_')}.json").read_text())
        assert any(m["role"] == "tool" for m in trajectory["messages"])  # the model really called tools
    report = CliRunner().invoke(app, ["bench", "report", str(out)])
    assert report.exit_code == 0 and "pass@1" in report.output
