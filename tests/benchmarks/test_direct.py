"""Direct mode with the scripted model: the EvalPlus prompt, code extraction from every reply shape
(prose around the block, several blocks, no block, a class before the function, a reply cut at
max_tokens), grading by the sandbox grader, pass@k from samples, and the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from benchmarks import datasets
from benchmarks.datasets import Task
from benchmarks.direct import DirectConfig, extract, messages, sanitize, solve
from benchmarks.models import ScriptedModel
from benchmarks.report import load, summarize
from june.cli import app

BODY = "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
FUNCTION = f"def has_close_elements(numbers, threshold):\n{BODY}"
WRONG = "def has_close_elements(numbers, threshold):\n    return False\n"


@pytest.fixture(scope="module")
def tasks() -> dict[str, Task]:
    return {t.id: t for t in datasets.load("humaneval")}


@pytest.fixture(scope="module")
def task(tasks: dict[str, Task]) -> Task:
    return tasks["HumanEval/0"]  # has_close_elements


def run(
    task: Task, steps: list[dict[str, Any]], tmp_path: Path, samples: int = 1
) -> tuple[dict[str, Any], dict[str, Any]]:
    record = solve(task, ScriptedModel(steps), DirectConfig(samples=samples), tmp_path)
    trajectory = json.loads((tmp_path / "trajectories" / f"{task.id.replace('/', '_')}.json").read_text())
    return record, trajectory


def test_the_prompt_is_evalplus_instruct_prompt(task: Task) -> None:
    system, user = messages(task)
    assert system == {"role": "system", "content": "You are a helpful assistant good at coding."}
    assert user["content"] == (
        "Please provide a self-contained Python script that solves the following problem in a markdown code block:\n"
        f"```python\n{task.prompt.strip()}\n```"
    )


def test_prose_around_the_code_block(task: Task, tmp_path: Path) -> None:
    reply = (
        f"Sure! Here is the solution:\n\n```python\n{FUNCTION}\n# quick check\n"
        "print(has_close_elements([1.0, 2.0], 0.5))\n```\n\nIt compares every pair once."
    )
    record, trajectory = run(task, [{"content": reply}], tmp_path)
    assert (record["status"], record["passed"], record["correct"], record["steps"]) == ("answered", True, 1, 1)
    assert record["verdict"] == "passed"  # the grader's status, as in agent mode
    assert trajectory["samples"][0]["code"] == FUNCTION.strip()  # prose and the print are gone
    assert record["prompt_tokens"] > 0 and record["completion_tokens"] > 0


def test_several_code_blocks(task: Task, tmp_path: Path) -> None:
    reply = (
        "First a helper:\n```python\ndef close(a, b, t):\n    return abs(a - b) < t\n```\n"
        "Then the function:\n```python\nfrom itertools import combinations\n\n"
        "def has_close_elements(numbers, threshold):\n"
        "    return any(close(a, b, threshold) for a, b in combinations(numbers, 2))\n"
        "```\n"
        "Usage:\n```python\nassert has_close_elements([1.0, 1.05], 0.1)\nprint('ok')\n```\n"
        "And in the shell:\n```bash\npython solution.py\n```"
    )
    record, trajectory = run(task, [{"content": reply}], tmp_path)
    assert record["passed"], trajectory["samples"][0]["test_output"]
    code = trajectory["samples"][0]["code"]
    assert (
        "def close" in code
        and "import combinations" in code
        and "assert" not in code
        and "python solution.py" not in code
    )


def test_no_code_block(task: Task, tmp_path: Path) -> None:
    bare = f"The answer is\n{FUNCTION}\nwhich checks all pairs."  # code without fences: the longest parsable span
    record, _ = run(task, [{"content": bare}], tmp_path)
    assert (record["status"], record["passed"]) == ("answered", True)
    prose = "I cannot solve this problem without more information about the threshold."
    record, trajectory = run(task, [{"content": prose}], tmp_path)
    assert (record["status"], record["passed"]) == ("no_code", False)
    assert trajectory["samples"][0]["code"] == ""


def test_a_block_opened_inside_another(task: Task, tmp_path: Path) -> None:
    # Qwen2.5-Coder-0.5B under repetition_penalty 1.1: a ```python block inside a ```markdown one.
    reply = f"```markdown\n```python\n{FUNCTION}\n# Example usage\nprint(has_close_elements([1.0], 0.5))\n```\n```"
    record, trajectory = run(task, [{"content": reply}], tmp_path)
    assert (record["status"], record["passed"]) == ("answered", True)
    assert trajectory["samples"][0]["code"] == FUNCTION.strip()


def test_class_before_the_function(task: Task, tmp_path: Path) -> None:
    reply = (
        "```python\nclass Pairs:\n    def __init__(self, numbers):\n        self.numbers = sorted(numbers)\n\n"
        "    def min_gap(self):\n"
        "        return min((b - a for a, b in zip(self.numbers, self.numbers[1:])), default=float('inf'))\n"
        "\n"
        "class Unused:\n    pass\n\n"
        "def has_close_elements(numbers, threshold):\n    return Pairs(numbers).min_gap() < threshold\n```"
    )
    record, trajectory = run(task, [{"content": reply}], tmp_path)
    assert record["passed"], trajectory["samples"][0]["test_output"]
    assert "class Pairs" in trajectory["samples"][0]["code"] and "Unused" not in trajectory["samples"][0]["code"]


def test_a_wrong_answer_fails_and_a_cut_reply_is_truncated(task: Task, tmp_path: Path) -> None:
    record, _ = run(task, [{"content": f"```python\n{WRONG}```"}], tmp_path)
    assert (record["status"], record["passed"]) == ("answered", False)
    cut = {"content": f"```python\n{FUNCTION}\n# now some tests\nfor x in range(", "finish_reason": "length"}
    record, _ = run(task, [cut], tmp_path)  # no closing fence, a last line that does not parse
    assert (record["status"], record["passed"]) == ("truncated", True)


def test_helpers_from_the_prompt_stay_defined(tasks: dict[str, Task], tmp_path: Path) -> None:
    # HumanEval/38's hidden tests call encode_cyclic, which the prompt defines and replies usually omit.
    task = tasks["HumanEval/38"]
    reply = "```python\ndef decode_cyclic(s: str):\n    return encode_cyclic(encode_cyclic(s))\n```"
    record, trajectory = run(task, [{"content": reply}], tmp_path)
    assert record["passed"], trajectory["samples"][0]["test_output"]


def test_samples_give_pass_at_k(task: Task, tmp_path: Path) -> None:
    steps = [{"content": f"```python\n{code}```"} for code in (WRONG, FUNCTION, WRONG, FUNCTION)]
    record, trajectory = run(task, steps, tmp_path, samples=4)
    assert (record["samples"], record["correct"], record["passed"], record["steps"]) == (4, 2, False, 4)
    assert [s["passed"] for s in trajectory["samples"]] == [False, True, False, True]
    summary = summarize([record, {**record, "task_id": "T/1", "correct": 4}])
    assert summary["pass@k"] == pytest.approx({1: (0.5 + 1.0) / 2})  # k=10 needs 10 samples per task


def test_model_error_is_a_status(task: Task, tmp_path: Path) -> None:
    record, _ = run(task, [], tmp_path)  # the script is exhausted at once
    assert record["status"] == "error" and "exhausted" in record["error"] and record["samples"] == 0


def test_sanitize_matches_evalplus_on_its_own_cases() -> None:
    # EvalPlus keeps imports and what the entry point reaches, drops prints and __main__ blocks.
    code = (
        "import math\nX = 2\ndef helper(y):\n    return y * X\ndef f(y):\n"
        "    return math.floor(helper(y))\nprint(f(3))\nif __name__ == '__main__':\n"
        "    f(1)\n"
    )
    assert (
        sanitize(code, "f")
        == "import math\nX = 2\ndef helper(y):\n    return y * X\ndef f(y):\n    return math.floor(helper(y))"
    )
    assert extract("```py\ndef f():\n    return 1\n```", "f") == "def f():\n    return 1"


def test_cli_direct_run_and_comparison_with_an_agent_run(tmp_path: Path) -> None:
    script = tmp_path / "direct.json"
    script.write_text(json.dumps([{"content": f"```python\n{FUNCTION}```"}]))
    direct_out = tmp_path / "direct"
    argv = [
        "bench",
        "run",
        "--mode",
        "direct",
        "--model",
        f"scripted:{script}",
        "--limit",
        "2",
        "--workers",
        "2",
        "--out",
        str(direct_out),
    ]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert "tasks/min" in result.output and "ETA" in result.output  # the progress bar's rate and time left
    records = {r["task_id"]: r for r in load(direct_out)}
    assert records["HumanEval/0"]["passed"] and not records["HumanEval/1"]["passed"]
    again = CliRunner().invoke(app, argv)  # resumes: nothing left to do
    assert again.exit_code == 0 and "2 of 2 tasks already done" in again.output
    agent_script = tmp_path / "agent.json"
    agent_script.write_text(json.dumps([{"tool": "submit"}]))
    agent_out = tmp_path / "agent"
    result = CliRunner().invoke(
        app, ["bench", "run", "--model", f"scripted:{agent_script}", "--limit", "2", "--out", str(agent_out)]
    )
    assert result.exit_code == 0, result.output
    report = CliRunner().invoke(app, ["bench", "report", str(direct_out), str(agent_out)], terminal_width=200)
    assert report.exit_code == 0, report.output
    assert "p50, p95" in report.output and "HumanEval/0" in report.output  # passed only in the direct run


def test_cli_rejects_greedy_samples_and_unknown_modes(tmp_path: Path) -> None:
    base = ["bench", "run", "--model", "scripted:x.json", "--out", str(tmp_path)]
    assert CliRunner().invoke(app, [*base, "--mode", "direct", "--samples", "5"]).exit_code == 2
    assert CliRunner().invoke(app, [*base, "--mode", "chat"]).exit_code == 2


def test_sampling_fields_override_the_servers_defaults() -> None:
    from benchmarks.run import sampling

    assert sampling(0.0, 1.0) == {"repetition_penalty": 1.0}  # greedy, no penalty, as published
    assert sampling(0.8, None) == {"top_p": 0.95, "top_k": -1}  # EvalPlus's sampling; server's penalty kept


def test_shuffle_runs_a_seeded_random_sample(tmp_path: Path) -> None:
    script = tmp_path / "direct.json"
    script.write_text(json.dumps([{"content": f"```python\n{FUNCTION}```"}]))

    def ids(seed: int, out: str) -> list[str]:
        argv = [
            "bench",
            "run",
            "--mode",
            "direct",
            "--model",
            f"scripted:{script}",
            "--limit",
            "3",
            "--workers",
            "1",
            "--shuffle",
            str(seed),
            "--out",
            str(tmp_path / out),
        ]
        assert CliRunner().invoke(app, argv).exit_code == 0
        return [r["task_id"] for r in load(tmp_path / out)]

    first = ids(7, "a")
    assert first == ids(7, "b") and first != ["HumanEval/0", "HumanEval/1", "HumanEval/2"]


def test_an_agent_run_takes_its_draft_from_a_recorded_direct_run(task: Task, tmp_path: Path) -> None:
    from benchmarks.agent import AgentConfig
    from benchmarks.agent_mode import solve as agent_solve
    from benchmarks.sandbox import Limits

    direct_dir, agent_dir = tmp_path / "direct", tmp_path / "agent"
    reply = f"```python\n{FUNCTION}```"
    record, _ = run(task, [{"content": reply, "prompt_tokens": 120, "completion_tokens": 45}], direct_dir)
    assert record["passed"]
    # The scripted model would answer WRONG if asked: the draft must be the recorded reply instead.
    model = ScriptedModel([{"content": f"```python\n{WRONG}```"}])
    result = agent_solve(
        task, model, AgentConfig(), agent_dir, Limits(wall_s=30, cpu_s=30), draft=True, draft_from=direct_dir
    )
    trajectory = json.loads((agent_dir / "trajectories" / f"{task.id.replace('/', '_')}.json").read_text())
    assert result["passed"] and result.get("examples_passed")
    assert trajectory["draft"]["reply"] == reply and trajectory["draft"]["draft_from"] == str(direct_dir)
    assert result["completion_tokens"] == record["completion_tokens"]  # what the recorded answer cost


def test_a_recorded_answer_is_used_only_when_it_is_direct_modes_whole_answer(task: Task, tmp_path: Path) -> None:
    from benchmarks.direct import recorded_answer

    assert recorded_answer(task, tmp_path) is None  # nothing recorded
    run(task, [{"content": f"```python\n{FUNCTION}```", "finish_reason": "length"}], tmp_path)
    assert recorded_answer(task, tmp_path) is None  # cut at max_tokens: the agent's budget may go on
    run(task, [{"content": f"```python\n{FUNCTION}```"}], tmp_path)
    _, code = recorded_answer(task, tmp_path)
    assert code == FUNCTION.strip()
    path = tmp_path / "trajectories" / "HumanEval_0.json"
    other = json.loads(path.read_text())
    other["messages"][1]["content"] += "\nAnd explain it."  # another prompt: not direct mode's answer
    path.write_text(json.dumps(other))
    assert recorded_answer(task, tmp_path) is None
