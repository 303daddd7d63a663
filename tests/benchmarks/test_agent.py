"""The agent with the scripted model: solving and failing on purpose, every limit status, reasoning
kept out of the prompt, the no-tool-call fallback, the editor's confinement, and crash isolation."""

from __future__ import annotations

import json
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from benchmarks import datasets
from benchmarks.agent import AgentConfig, parse_fallback
from benchmarks.agent_mode import solve
from benchmarks.batch import run_batch
from benchmarks.datasets import Task
from benchmarks.models import ScriptedModel
from benchmarks.results import RESULTS
from benchmarks.sandbox import Limits, conceal, remove_tree
from june.cli import app

LIMITS = Limits(wall_s=30, cpu_s=30)


@pytest.fixture(scope="module")
def task() -> Task:
    return datasets.load("humaneval")[0]  # has_close_elements


pytestmark = pytest.mark.usefixtures("bwrap")


def run(
    task: Task, steps: list[dict[str, Any]], tmp_path: Path, **config: Any
) -> tuple[dict[str, Any], dict[str, Any], ScriptedModel]:
    model = ScriptedModel(steps)
    record = solve(task, model, AgentConfig(**config), tmp_path, LIMITS)
    trajectory = json.loads((tmp_path / "trajectories" / "HumanEval_0.json").read_text())
    return record, trajectory, model


def test_solves_a_task(task: Task, tmp_path: Path) -> None:
    steps = [
        {"tool": "editor", "args": {"command": "create", "path": "solution.py", "file_text": task.canonical}},
        {
            "tool": "bash",
            "args": {"command": "python -c 'from solution import *; print(has_close_elements([1.0, 1.05], 0.1))'"},
        },
        {"tool": "submit", "args": {}},
    ]
    record, trajectory, _ = run(task, steps, tmp_path)
    assert record["status"] == "submitted" and record["passed"] is True, trajectory.get("test_output")
    assert record["steps"] == 3 and record["prompt_tokens"] > 0 and record["completion_tokens"] > 0
    observations = [m["content"] for m in trajectory["messages"] if m["role"] == "tool"]
    assert observations[1] == "exit code: 0\nTrue\n"
    assert trajectory["solution"] == task.canonical


def test_fails_a_task_on_purpose(task: Task, tmp_path: Path) -> None:
    wrong = task.starter + "    return False\n"
    steps = [
        {"tool": "editor", "args": {"command": "create", "path": "/tmp/task/solution.py", "file_text": wrong}},
        {"tool": "submit", "args": {}},
    ]
    record, trajectory, _ = run(task, steps, tmp_path)
    assert record["status"] == "submitted" and record["passed"] is False
    assert "AssertionError" in trajectory["test_output"]


def test_step_limit(task: Task, tmp_path: Path) -> None:
    steps = [{"tool": "bash", "args": {"command": f"echo {i}"}} for i in range(10)]
    record, _, _ = run(task, steps, tmp_path, max_steps=3)
    assert (record["status"], record["steps"], record["passed"]) == ("step_limit", 3, False)


def test_a_repeated_turn_ends_the_loop(task: Task, tmp_path: Path) -> None:
    # Greedy decoding: the same call after the same output comes back until a limit.
    steps = [
        {"tool": "bash", "args": {"command": "echo 1"}},
        {"tool": "bash", "args": {"command": "echo 2"}},
        *[{"tool": "bash", "args": {"command": "echo 3"}}] * 10,
    ]
    record, _, _ = run(task, steps, tmp_path)
    assert (record["status"], record["steps"]) == ("repeated", 4)


def test_token_limit(task: Task, tmp_path: Path) -> None:
    steps = [
        {"tool": "bash", "args": {"command": f"true {i}"}, "prompt_tokens": 600, "completion_tokens": 10}
        for i in range(5)
    ]
    record, _, _ = run(task, steps, tmp_path, max_tokens=1000)
    assert (record["status"], record["steps"], record["prompt_tokens"]) == ("token_limit", 2, 1200)


def test_time_limit(task: Task, tmp_path: Path) -> None:
    steps = [{"tool": "bash", "args": {"command": "sleep 60"}}, {"tool": "submit"}]
    record, trajectory, _ = run(task, steps, tmp_path, max_wall_s=2)
    assert record["status"] == "time_limit" and record["wall_s"] < 30
    assert "wall-clock limit" in trajectory["messages"][-1]["content"]


def test_model_error_is_a_status(task: Task, tmp_path: Path) -> None:
    record, _, _ = run(task, [{"tool": "bash", "args": {"command": "true"}}], tmp_path)
    assert record["status"] == "error" and "script exhausted" in record["error"]


def test_reasoning_is_kept_out_of_the_next_prompt(task: Task, tmp_path: Path) -> None:
    steps = [
        {
            "content": "<think>secret plan</think>Looking at the file.",
            "reasoning": "hidden chain",
            "tool": "editor",
            "args": {"command": "view", "path": "solution.py"},
        },
        {"content": "<think>unterminated thought", "tool": "submit"},
    ]
    record, trajectory, model = run(task, steps, tmp_path)
    assert record["status"] == "submitted"
    second_prompt = json.dumps(model.seen[1])
    assert (
        "secret plan" not in second_prompt and "hidden chain" not in second_prompt and "reasoning" not in second_prompt
    )
    assert model.seen[1][2]["content"] == "Looking at the file."
    assert trajectory["reasoning"][0] == "hidden chain"  # kept for the reader, not the model


def test_fallback_without_native_tool_calls(task: Task, tmp_path: Path) -> None:
    body = task.canonical.replace("'", "'\\''")
    steps = [
        {"content": f"I will write it.\n```bash\nprintf '%s' '{body}' > solution.py\n```"},
        {"content": "no block here"},
        {"content": '{"name": "bash", "arguments": {"command": "python -c \'import solution\'"}}'},
        {"content": "```bash\nsubmit\n```"},
    ]
    record, trajectory, model = run(task, steps, tmp_path, native_tools=False)
    assert record["status"] == "submitted" and record["passed"] is True, trajectory
    assert "tool_calls" not in json.dumps(model.seen[-1])
    assert any("No command found" in str(m["content"]) for m in model.seen[-1])
    assert parse_fallback("submit")[0].name == "submit"
    assert parse_fallback("```python\nprint(1)\n```\nthen\n```bash\nls\n```")[0].arguments == '{"command": "ls"}'
    assert parse_fallback("```python\nprint(1)\n```\nno command") == []
    assert json.loads(parse_fallback("```bash\necho cut off by max_tok")[0].arguments) == {
        "command": "echo cut off by max_tok"
    }
    assert parse_fallback('```json\n{"name": "submit", "arguments": {}}\n```')[0].name == "submit"
    both = parse_fallback("Done:\n```bash\necho hi\nsubmit\n```")
    assert [c.name for c in both] == ["bash", "submit"] and json.loads(both[0].arguments) == {"command": "echo hi"}


def test_editor_stays_in_the_task_dir(task: Task, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    steps = [
        {"tool": "editor", "args": {"command": "create", "path": str(outside), "file_text": "x"}},
        {"tool": "editor", "args": {"command": "create", "path": "../escape.txt", "file_text": "x"}},
        {"tool": "bash", "args": {"command": f"ln -s {tmp_path} link"}},
        {"tool": "editor", "args": {"command": "create", "path": "link/outside.txt", "file_text": "x"}},
        {"tool": "editor", "args": {"command": "str_replace", "path": "solution.py", "old_str": "nope", "new_str": ""}},
        {"tool": "submit"},
    ]
    record, trajectory, _ = run(task, steps, tmp_path)
    tool_outputs = [m["content"] for m in trajectory["messages"] if m["role"] == "tool"]
    assert record["status"] == "submitted"
    assert not outside.exists() and not list(tmp_path.glob("**/escape.txt"))
    assert [o.startswith("error:") for o in tool_outputs] == [True, True, False, True, True, False]


def test_editor_mistakes_on_folders_and_binary_files_go_back_to_the_model(task: Task, tmp_path: Path) -> None:
    steps = [
        {"tool": "bash", "args": {"command": "mkdir folder && printf '\\377\\376' > blob.bin"}},
        {"tool": "editor", "args": {"command": "create", "path": "folder", "file_text": "x"}},
        {"tool": "editor", "args": {"command": "str_replace", "path": "blob.bin", "old_str": "a", "new_str": "b"}},
        {"tool": "editor", "args": {"command": "view", "path": "blob.bin"}},
        {"tool": "submit"},
    ]
    record, trajectory, _ = run(task, steps, tmp_path)
    bash, folder, blob, view, _ = [m["content"] for m in trajectory["messages"] if m["role"] == "tool"]
    assert record["status"] == "submitted", record
    assert bash.startswith("exit code: 0")
    assert folder == "error: folder: Is a directory"
    assert blob == "error: blob.bin is not UTF-8 text; use bash to change it"
    assert not view.startswith("error:")


def test_a_crashing_task_does_not_end_the_batch(task: Task, tmp_path: Path) -> None:
    broken = Task("broken/1", "swebench-lite", "p", "", "", "", "", kind="swebench")
    script = [
        {"tool": "editor", "args": {"command": "create", "path": "solution.py", "file_text": task.canonical}},
        {"tool": "submit"},
    ]
    records = run_batch(
        [broken, task], lambda t: solve(t, ScriptedModel(script), AgentConfig(), tmp_path, LIMITS), tmp_path, 2
    )
    by_id = {r["task_id"]: r for r in records}
    assert by_id["broken/1"]["status"] == "error" and "Docker" in by_id["broken/1"]["error"]
    assert by_id["HumanEval/0"]["passed"] is True
    assert (tmp_path / "trajectories" / "broken_1.json").exists()


SECRET = "sk-june-agent-secret-91ab"


def test_a_symlinked_solution_is_not_followed_by_the_host(
    task: Task, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ln -sf /proc/self/environ solution.py` (or a 0600 host file) then submit: nothing of the host
    lands in the trajectory."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    private = tmp_path / "private.txt"
    private.write_text(SECRET)
    private.chmod(0o600)
    for target in ("/proc/self/environ", str(private)):
        out = tmp_path / f"run-{Path(target).name}"
        steps = [{"tool": "bash", "args": {"command": f"ln -sf {target} solution.py"}}, {"tool": "submit"}]
        record = solve(task, ScriptedModel(steps), AgentConfig(), out, LIMITS)
        text = (out / "trajectories" / "HumanEval_0.json").read_text()
        assert record["passed"] is False and record["status"] == "submitted"
        assert SECRET not in text and "symlink" in json.loads(text)["solution_error"]


def test_fifos_never_block_the_editor(task: Task, tmp_path: Path) -> None:
    steps = [
        {"tool": "bash", "args": {"command": "mkfifo p && mkfifo solution.py.new"}},
        {"tool": "editor", "args": {"command": "view", "path": "p"}},
        {"tool": "editor", "args": {"command": "create", "path": "p", "file_text": "x"}},
        {"tool": "editor", "args": {"command": "str_replace", "path": "p", "old_str": "a", "new_str": "b"}},
        {"tool": "submit"},
    ]
    record, trajectory, _ = run(task, steps, tmp_path)
    outputs = [m["content"] for m in trajectory["messages"] if m["role"] == "tool"]
    assert record["status"] == "submitted", record
    assert all(o.startswith("error:") for o in outputs[1:4]), outputs


def test_listing_does_not_reveal_host_folders(task: Task, tmp_path: Path) -> None:
    steps = [
        {"tool": "bash", "args": {"command": "ln -s /root a; ln -s /nonexistent-folder b; ln -s /etc c"}},
        {"tool": "editor", "args": {"command": "view", "path": "."}},
        {"tool": "editor", "args": {"command": "view", "path": "a"}},
        {"tool": "submit"},
    ]
    _, trajectory, _ = run(task, steps, tmp_path)
    listing, into_link = [m["content"] for m in trajectory["messages"] if m["role"] == "tool"][1:3]
    assert listing.splitlines() == ["a@", "b@", "c@", "solution.py"]
    assert into_link.startswith("error:")


def test_a_lone_surrogate_is_a_tool_error(task: Task, tmp_path: Path) -> None:
    steps = [
        {"tool": "editor", "args": {"command": "create", "path": "solution.py", "file_text": "x = '\ud800'\n"}},
        {
            "tool": "editor",
            "args": {"command": "str_replace", "path": "solution.py", "old_str": "def", "new_str": "\udfff"},
        },
        {"tool": "editor", "args": {"command": "create", "path": "\ud800.py", "file_text": "x"}},
        {"tool": "submit"},
    ]
    record, trajectory, _ = run(task, steps, tmp_path)
    outputs = [m["content"] for m in trajectory["messages"] if m["role"] == "tool"]
    assert record["status"] == "submitted" and record["error"] is None, record
    assert all(o.startswith("error:") for o in outputs[:3]), outputs


def test_a_deep_tree_is_cleaned_and_the_task_graded(task: Task, tmp_path: Path) -> None:
    build = "python -c \"import os\nfor _ in range(1100): os.mkdir('d'); os.chdir('d')\nos.mkfifo('p')\""
    steps = [
        {"tool": "editor", "args": {"command": "create", "path": "solution.py", "file_text": task.canonical}},
        {"tool": "bash", "args": {"command": f"{build} && chmod 000 d && echo built"}},
        {"tool": "submit"},
    ]
    before = set(Path(tempfile.gettempdir()).glob("june-task-*"))
    record, trajectory, _ = run(task, steps, tmp_path)
    assert "built" in json.dumps(trajectory["messages"])
    assert record["passed"] is True and record["verdict"] == "passed", record
    assert set(Path(tempfile.gettempdir()).glob("june-task-*")) <= before


def test_results_and_trajectories_are_private_and_out_of_sight(task: Task) -> None:
    out = Path(tempfile.mkdtemp(prefix="june-out-", dir=sys.prefix))  # --out inside a folder the sandbox binds
    try:
        (out / "earlier.txt").write_text(SECRET)
        conceal(out)
        steps = [
            {"tool": "bash", "args": {"command": f"cat {out}/earlier.txt; ls -A {out} | wc -l"}},
            {"tool": "submit"},
        ]
        run_batch([task], lambda t: solve(t, ScriptedModel(steps), AgentConfig(), out, LIMITS), out, 1)
        trajectory = out / "trajectories" / "HumanEval_0.json"
        seen = next(m["content"] for m in json.loads(trajectory.read_text())["messages"] if m["role"] == "tool")
        assert SECRET not in seen and seen.rstrip().endswith("0"), seen
        assert stat.S_IMODE(os.stat(trajectory).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(out / RESULTS).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(trajectory.parent).st_mode) == 0o700
    finally:
        remove_tree(out)


def test_swebench_is_refused_before_any_model_call(tmp_path: Path) -> None:
    data = tmp_path / "lite.jsonl"
    data.write_text(
        json.dumps({"instance_id": "a__b-1", "problem_statement": "p", "patch": "", "test_patch": ""}) + "\n"
    )
    script = tmp_path / "never-read.json"  # does not exist: a model call would crash on it
    for dataset in ("swebench-lite", "swebench-verified"):
        result = CliRunner().invoke(
            app,
            [
                "bench",
                "run",
                "--model",
                f"scripted:{script}",
                "--dataset",
                dataset,
                "--data",
                str(data),
                "--out",
                str(tmp_path / "run"),
            ],
        )
        assert result.exit_code == 2 and "Docker" in result.output, result.output
    assert not (tmp_path / "run").exists()


GOOD = (
    "def has_close_elements(numbers, threshold):\n"
    "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
)
BAD = "def has_close_elements(numbers, threshold):\n    return False\n"


def test_a_draft_passing_the_docstring_examples_is_submitted_at_once(task: Task, tmp_path: Path) -> None:
    model = ScriptedModel([{"content": f"Here you go:\n```python\n{GOOD}```"}])  # no tools: the direct prompt's answer
    record = solve(task, model, AgentConfig(), tmp_path, LIMITS, draft=True)
    trajectory = json.loads((tmp_path / "trajectories" / "HumanEval_0.json").read_text())
    assert (record["status"], record["passed"], record["steps"], record["examples_passed"]) == (
        "submitted",
        True,
        1,
        True,
    )
    assert model.seen[0][1]["content"].startswith("Please provide a self-contained Python script")
    assert GOOD in trajectory["draft"]["solution"] and "2 of 2 examples pass" in trajectory["draft"]["examples"]


def test_agent_gets_the_failing_examples_and_fixes_the_draft(task: Task, tmp_path: Path) -> None:
    steps = [
        {"content": f"```python\n{BAD}```"},
        {"content": f"Fixed:\n```python\n{BAD}```"},  # the repair turn: still failing, so the draft goes on
        {"tool": "bash", "args": {"command": "python -m doctest solution.py; echo done"}},
        {
            "tool": "editor",
            "args": {"command": "create", "path": "solution.py", "file_text": f"from typing import List\n\n{GOOD}"},
        },
        {"tool": "submit", "args": {}},
    ]
    model = ScriptedModel(steps)
    record = solve(task, model, AgentConfig(), tmp_path, LIMITS, draft=True)
    assert record["passed"] is True and record["steps"] == 5 and "examples_passed" not in record  # direct alone fails
    assert "repaired" not in record
    first_turn = model.seen[2][1]["content"]
    assert "already contains your first answer" in first_turn and BAD in first_turn
    assert "Failed example" in first_turn and "1 of 2 examples pass" in first_turn
    assert "from solution import has_close_elements" in first_turn  # a bare call was a NameError (HumanEval/86)


def test_a_snippet_overwriting_the_draft_is_graded_as_the_draft(task: Task, tmp_path: Path) -> None:
    # Seen with Qwen2.5-Coder-0.5B and forced tool calls: the file replaced by `print(...)` lines.
    steps = [
        {"content": f"```python\n{BAD}```"},
        {"content": "I cannot fix it."},  # the repair turn, without code: the draft goes on
        {
            "tool": "editor",
            "args": {"command": "create", "path": "solution.py", "file_text": "import math\nprint(math.trunc(3.5))"},
        },
        {"tool": "submit", "args": {}},
    ]
    record = solve(task, ScriptedModel(steps), AgentConfig(), tmp_path, LIMITS, draft=True)
    trajectory = json.loads((tmp_path / "trajectories" / "HumanEval_0.json").read_text())
    assert record["restored_draft"] is True and trajectory["solution"] == trajectory["draft"]["solution"]
    assert "AssertionError" in trajectory["test_output"]  # the draft's own failure, not a NameError


def test_examples_are_read_as_written_so_an_escape_in_the_docstring_still_parses(tmp_path: Path) -> None:
    """HumanEval/51's docstring holds `remove_vowels("abcdef\\nghijklm")` in a plain (not raw) string:
    evaluated, the newline breaks doctest's parser, and a correct draft was reported as failing (the
    agent then "fixed" it into a wrong one)."""
    task = {t.id: t for t in datasets.load("humaneval")}["HumanEval/51"]
    draft = "def remove_vowels(text):\n    return ''.join(c for c in text if c.lower() not in 'aeiou')\n"
    model = ScriptedModel([{"content": f"```python\n{draft}```"}])
    record = solve(task, model, AgentConfig(), tmp_path, LIMITS, draft=True)
    trajectory = json.loads((tmp_path / "trajectories" / "HumanEval_51.json").read_text())
    assert "6 of 6 examples pass" in trajectory["draft"]["examples"], trajectory["draft"]["examples"]
    assert (record["status"], record["passed"], record["examples_passed"]) == ("submitted", True, True)


def test_a_draft_giving_the_results_written_in_the_docstring_is_submitted_at_once(tmp_path: Path) -> None:
    """HumanEval/98 writes its examples as `count_upper('aBCdEf') returns 1`, not doctest: the 1.5B
    checked one, got 1, then "fixed" a correct draft into a wrong one. Those calls are now run too."""
    task = {t.id: t for t in datasets.load("humaneval")}["HumanEval/98"]
    draft = "def count_upper(s):\n    return sum(1 for c in s[::2] if c in 'AEIOU')\n"
    model = ScriptedModel([{"content": f"```python\n{draft}```"}])  # one step: a second model call would be an error
    record = solve(task, model, AgentConfig(), tmp_path, LIMITS, draft=True)
    trajectory = json.loads((tmp_path / "trajectories" / "HumanEval_98.json").read_text())
    assert "3 of 3 examples pass" in trajectory["draft"]["examples"], trajectory["draft"]["examples"]
    assert (record["status"], record["passed"], record["steps"], record["examples_passed"]) == (
        "submitted",
        True,
        1,
        True,
    )


def test_a_draft_missing_a_written_result_goes_to_the_agent_without_that_hint(tmp_path: Path) -> None:
    """A written call can be a definition rather than a call (HumanEval/130's `tri(1) = 3` while
    `tri(n)` returns a list), so its mismatch is not shown to the model as a failure."""
    task = {t.id: t for t in datasets.load("humaneval")}["HumanEval/98"]
    wrong = "def count_upper(s):\n    return sum(1 for c in s[::2] if c in 'aeiou')\n"
    steps = [{"content": f"```python\n{wrong}```"}, {"tool": "submit", "args": {}}]
    model = ScriptedModel(steps)
    record = solve(task, model, AgentConfig(), tmp_path, LIMITS, draft=True)
    trajectory = json.loads((tmp_path / "trajectories" / "HumanEval_98.json").read_text())
    assert "Failed example: count_upper('abcdefg')" in trajectory["draft"]["examples"]
    assert "2 of 3 examples pass" in trajectory["draft"]["examples"]
    assert "examples_passed" not in record and record["steps"] == 2 and not record["passed"]
    assert "Failed example" not in model.seen[1][1]["content"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("f('aBCdEf') returns 1", [("f('aBCdEf')", "1")]),
        ("f([1, 2], 5) ➞ False", [("f([1, 2], 5)", "False")]),
        ('f("a)b") == "x"', [('f("a)b")', '"x"')]),  # a parenthesis inside a string argument
        ("f(3, 4, 5) == 6.00", [("f(3, 4, 5)", "6.00")]),
        ("f(5) => [1, 2, 6, 24, 15].", [("f(5)", "[1, 2, 6, 24, 15]")]),  # the sentence's full stop
        ("f(5) should return (None, 1)", [("f(5)", "(None, 1)")]),
        ("f(5) -> [1, 5] # the odd ones", [("f(5)", "[1, 5] # the odd ones")]),
        ("f(x) = 3", []),  # an argument that is not a literal
        ("f(1) is the first element of the sequence", []),  # no result mark
        ("f(1) returns the sum of its digits", []),  # a result that is not a literal
        ("g(1) == 2", []),  # another function
        ("the call f(1) == 2 inside a sentence", []),
    ],
)
def test_written_calls_are_read_in_the_notations_humaneval_uses(line: str, expected: list[tuple[str, str]]) -> None:
    from benchmarks.examples import written_calls

    assert written_calls(f"Some text.\n    {line}\n    More text.", "f") == expected


def test_a_draft_failing_its_doctest_examples_gets_one_repair_turn(task: Task, tmp_path: Path) -> None:
    """Self-debugging: the failures go back to the model in the direct conversation; a corrected
    function that passes the examples is submitted without the tool loop."""
    steps = [{"content": f"```python\n{BAD}```"}, {"content": f"Here is the fix:\n```python\n{GOOD}```"}]
    model = ScriptedModel(steps)  # two steps only: a third model call would be an error
    record = solve(task, model, AgentConfig(), tmp_path, LIMITS, draft=True)
    trajectory = json.loads((tmp_path / "trajectories" / "HumanEval_0.json").read_text())
    assert (record["status"], record["passed"], record["steps"], record["repaired"]) == ("submitted", True, 2, True)
    repair = model.seen[1]
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"] and BAD in repair[2]["content"]
    assert "Failed example" in repair[3]["content"] and "1 of 2 examples pass" in repair[3]["content"]
    assert "2 of 2 examples pass" in trajectory["repair"]["examples"] and GOOD in trajectory["solution"]
