"""Issue 13's and issue 23's attacks on the verdict, through the real grader and sandbox: every cheat in
`benchmarks.cheats` fails on a few HumanEval tasks and, where the trick targets unittest, on a
DataFrameBench task (both graded in two sandboxes: the tests in a judge that never runs the
solution's code); honest solutions still pass the same way."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from benchmarks import datasets, judge
from benchmarks.cheats import CHEATS, family
from benchmarks.datasets import Task
from benchmarks.grading import Grade, grade

pytestmark = pytest.mark.usefixtures("bwrap")

UNITTEST_CHEATS = (
    "patched unittest and AssertionError",
    "always-equal return value",
    "skip the tests",
    "forge the verdict line",
    "sys.exit(0) at import",
    "atexit hook exiting 0",
)
ISSUE_23_FAMILIES = sorted({family(name) for name in CHEATS if ":" in name})
"""Each passed every DataFrameBench task while the tests ran in the solution's process (issue 23)."""


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


@pytest.mark.parametrize(
    "cheat", [c for c in CHEATS if c not in ("patched unittest and AssertionError", "skip the tests")]
)
def test_cheat_fails_on_humaneval(cheat: str, humaneval: list[Task]) -> None:
    """(The unittest-only tricks never fooled HumanEval's check; they are tried on DataFrameBench below.)"""
    results = grade_all([(t, CHEATS[cheat](t)) for t in humaneval])
    assert not any(r.passed for r in results), [r.detail for r in results]


def test_unittest_cheats_fail_on_dataframebench(dataframe_task: Task) -> None:
    results = grade_all([(dataframe_task, CHEATS[c](dataframe_task)) for c in UNITTEST_CHEATS], wall_s=120)
    assert [r.passed for r in results] == [False] * len(UNITTEST_CHEATS), [r.detail for r in results]


@pytest.mark.parametrize("name", ISSUE_23_FAMILIES)
def test_issue_23_families_fail_on_dataframebench(name: str, dataframe_task: Task) -> None:
    """Every variant of the family: disarming the runner through frames, a replaced `__builtins__` the
    tests inherit, the keyring's nonce through cffi, self-restoring unittest patches, inherited methods
    on pandas classes, forged wire values."""
    variants = [c for c in CHEATS if family(c) == name]
    results = grade_all([(dataframe_task, CHEATS[c](dataframe_task)) for c in variants], wall_s=120)
    assert [r.passed for r in results] == [False] * len(variants), [r.detail for r in results]


def synthetic_task(test: str, canonical: str) -> Task:
    """A DataFrameBench-style task (unittest tests on a `task_func`) made up for one test."""
    starter = "import pandas as pd\n\n\ndef task_func():\n    pass\n"
    return Task(
        id="DFB/SYNTHETIC",
        dataset="dataframebench-val",
        prompt=starter,
        entry_point="task_func",
        test=test,
        canonical=canonical,
        starter=starter,
        kind="unittest",
        memory_mb=4096,
        meta={"libs": []},
    )


def test_an_inherited_method_added_to_a_pandas_class_fools_no_test() -> None:
    """`DataFrame.equals` and `__eq__` are inherited (NDFrame, OpsMixin): added to DataFrame itself they
    changed no attribute the old runner had seen. The judge's DataFrame is built by pandas, untouched."""
    test = (
        "import unittest\nimport pandas as pd\n\n\nclass TestCases(unittest.TestCase):\n"
        "    def test_frame(self):\n        self.assertTrue(task_func().equals(pd.DataFrame({'a': [1, 2]})))\n"
        "        self.assertEqual(task_func(), 'anything')\n"
    )
    task = synthetic_task(test, "import pandas as pd\n\n\ndef task_func():\n    return pd.DataFrame({'a': [1, 2]})\n")
    cheat = CHEATS["inherited method: DataFrame.__eq__/equals"](task)
    results = grade_all([(task, cheat), (task, task.starter)], wall_s=120)
    assert [r.passed for r in results] == [False, False], [r.detail for r in results]


def test_the_hidden_tests_are_nowhere_in_the_solutions_process(dataframe_task: Task) -> None:
    """The solution looks for the tests' text in its frames, its heap, its fds and /proc, and prints what
    it finds: nothing of them is there (they live in the judge's memory only)."""
    marker = "Test multiline with trailing whitespaces"
    assert marker in dataframe_task.test
    search = """import gc, os, stat, sys
_found = []
_frame = sys._getframe()
while _frame is not None:
    _found += [repr(v) for v in list(_frame.f_locals.values()) + list(_frame.f_globals.values())]
    _frame = _frame.f_back
try:
    _found += [o for o in gc.get_objects() if isinstance(o, str)]
    _found += [repr(o) for o in gc.get_objects() if isinstance(o, dict)]
except Exception:
    pass
for _root in ("/proc/self/fd", "/tmp", "/tmp/task", "/dev/shm"):
    for _name in os.listdir(_root) if os.path.isdir(_root) else []:
        try:
            if stat.S_ISREG(os.stat(os.path.join(_root, _name)).st_mode):  # never a pipe: it would block
                with open(os.path.join(_root, _name), "rb") as _f:
                    _found.append(_f.read(1 << 20).decode(errors="replace"))
        except Exception:
            pass
for _path in ("/proc/self/cmdline", "/proc/self/environ", "/proc/1/cmdline"):
    try:
        _found.append(open(_path, "rb").read().decode(errors="replace"))
    except Exception:
        pass
print("STOLEN" if any(MARKER in text for text in _found) else "NOTHING", file=sys.stderr)
""".replace("MARKER", f"{marker[::-1]!r}[::-1]")  # the marker itself is not in solution.py
    result = grade(dataframe_task, dataframe_task.starter + search, wall_s=120)
    assert "NOTHING" in result.detail and "STOLEN" not in result.detail, result.detail


def test_a_plot_made_at_run_time_is_graded_like_any_other() -> None:
    """V0016's canonical solution returns an Axes of a class matplotlib creates at run time: passed
    (the old runner took it for a class the solution defined)."""
    task = next(t for t in datasets.load("dataframebench", split="val") if t.id == "DFB/V0016")
    assert grade(task, task.canonical, wall_s=120).passed


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
