"""Issue 13's attacks on the verdict, through the real grader and sandbox: every cheat in
`benchmarks.cheats` fails on a few HumanEval tasks (two sandboxes per grade) and, where the trick
targets unittest, on a DataFrameBench task (tests in the solution's process); honest solutions still
pass the same way."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from benchmarks import datasets, judge
from benchmarks.cheats import CHEATS
from benchmarks.datasets import Task
from benchmarks.harness import Grade, grade

pytestmark = pytest.mark.usefixtures("bwrap")

UNITTEST_CHEATS = ("patched unittest and AssertionError", "always-equal return value", "skip the tests",
                   "forge the verdict line", "sys.exit(0) at import", "atexit hook exiting 0")


@pytest.fixture(scope="module")
def humaneval() -> list[Task]:
    tasks = datasets.load("humaneval")
    return [tasks[0], tasks[32]]  # a plain one; find_zero, whose check uses the prompt's helper `poly`


@pytest.fixture(scope="module")
def dataframe_task() -> Task:
    return next(t for t in datasets.load("dataframebench", split="val") if t.id == "DFB/V0002")


def grade_all(jobs: list[tuple[Task, str]], wall_s: float = 60) -> list[Grade]:
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda job: grade(job[0], job[1], wall_s=wall_s), jobs))


def test_honest_solutions_still_pass(humaneval: list[Task], dataframe_task: Task) -> None:
    tasks = [*humaneval, dataframe_task]
    results = grade_all([(t, t.canonical) for t in tasks] + [(t, t.starter) for t in tasks], wall_s=120)
    assert [r.passed for r in results] == [True] * 3 + [False] * 3, [r.detail for r in results]
    assert [r.status for r in results] == ["passed"] * 3 + ["failed"] * 3


@pytest.mark.parametrize("cheat", [c for c in CHEATS if c not in ("patched unittest and AssertionError", "skip the tests")])
def test_cheat_fails_on_humaneval(cheat: str, humaneval: list[Task]) -> None:
    """(The unittest-only tricks never fooled HumanEval's check; they are tried on DataFrameBench below.)"""
    results = grade_all([(t, CHEATS[cheat](t)) for t in humaneval])
    assert not any(r.passed for r in results), [r.detail for r in results]


def test_unittest_cheats_fail_on_dataframebench(dataframe_task: Task) -> None:
    results = grade_all([(dataframe_task, CHEATS[c](dataframe_task)) for c in UNITTEST_CHEATS], wall_s=120)
    assert [r.passed for r in results] == [False] * len(UNITTEST_CHEATS), [r.detail for r in results]
    patched = results[0].detail
    assert "the solution changed" in patched or "not allowed" in patched, patched


def test_only_plain_data_crosses_to_the_judge() -> None:
    value = {"a": [1, 2.5, (True, None)], (1, "x"): {b"y", frozenset({3})}, "c": complex(1, -2), "n": float("nan")}
    back = judge.decode(json.loads(json.dumps(judge.encode(value))))
    assert back.keys() == value.keys() and back["a"] == value["a"] and type(back["a"][2]) is tuple
    assert back[(1, "x")] == value[(1, "x")] and back["c"] == value["c"] and back["n"] != back["n"]

    class Sneaky(int):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = int.__hash__

    for bad in (Sneaky(1), [Sneaky(1)], object()):
        with pytest.raises(judge.WireError):
            judge.encode(bad)
    for malformed in (["i", 5], ["x"], ["l", "nope"], [], ["d", [[["l", []], ["n"]]]]):
        with pytest.raises(judge.WireError):
            judge.decode(malformed)


def test_a_helper_redefined_by_the_solution_does_not_fool_check(humaneval: list[Task]) -> None:
    find_zero = humaneval[1]
    cheat = find_zero.prompt + "    return 0.0\n\n\ndef poly(xs, x):\n    return 0.0\n"
    assert not grade(find_zero, cheat).passed


def test_wrong_exit_status_does_not_fail_a_right_solution(humaneval: list[Task]) -> None:
    """Exit status is not the verdict either way: a correct solution that exits 3 at the end still passes."""
    task = humaneval[0]
    solution = task.canonical + "\nimport atexit, os\natexit.register(os._exit, 3)\n"
    assert grade(task, solution).passed


def test_returned_objects_with_their_own_comparisons_are_refused() -> None:
    """The unittest runner's type check, directly: a solution-made class, or a real DataFrame whose
    `equals` the solution replaced, is refused; a plain DataFrame or a list of numbers is not."""
    import pandas as pd

    known = judge._all_types()

    class Anything:
        def __eq__(self, other: object) -> bool:
            return True

    frame = pd.DataFrame({"a": [1]})
    forged = pd.DataFrame({"a": [1]})
    always = lambda *args: True  # noqa: E731
    always.__module__ = "solution"
    forged.equals = always
    judge._check_types(frame, known, 0)
    judge._check_types([1, 2.0, ("x", None)], known, 0)
    for bad in (Anything(), [1, Anything()], {"k": Anything()}, forged):
        with pytest.raises(TypeError):
            judge._check_types(bad, known, 0)
