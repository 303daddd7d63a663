"""`june bench selfcheck`: the grader checked on a dataset (canonical solutions pass, empty and
cheating ones (benchmarks/cheats.py) do not)."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from benchmarks import datasets
from benchmarks.batch import console, load_tasks
from benchmarks.cheats import CHEATS, family
from benchmarks.grading import grade, missing_module


def selfcheck(
    dataset: str = typer.Option("humaneval", help=f"One of: {', '.join(datasets.DATASETS)}"),
    split: str | None = typer.Option(None, help="DataFrameBench split: test (default) or val"),
    data: Path | None = typer.Option(None, help="Local dataset file (EvalPlus)"),
    workers: int = typer.Option(max(os.cpu_count() or 1, 1) * 4, help="Sandboxes in parallel"),
    limit: int | None = typer.Option(None, help="Only the first K tasks"),
    all_cheats: bool = typer.Option(
        True,
        "--all-cheats/--one-cheat-per-task",
        help="Every cheat on every task, or each task one cheat in turn (faster)",
    ),
) -> None:
    """Check the grader: canonical solutions must pass every task, empty ones and cheating ones none.

    Cheats are counted per family (`benchmarks.cheats.family`). On DataFrameBench tasks graded
    in-process (`datasets.IN_PROCESS`: not adversarially robust) a cheat that passes is listed, not
    counted as a failure of the self-check."""
    tasks = load_tasks(dataset, split, data, limit, None)
    names = list(CHEATS)
    if all_cheats:
        cheating = [(name, t) for t in tasks for name in names]
    else:
        cheating = [(names[i % len(names)], t) for i, t in enumerate(tasks)]
    start = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        canonical = list(pool.map(lambda t: grade(t, t.canonical), tasks))
        empty = list(pool.map(lambda t: grade(t, t.starter), tasks))
        cheats = list(pool.map(lambda job: grade(job[1], CHEATS[job[0]](job[1])), cheating))
    env_gaps = {
        t.id: m for t, (ok, output) in zip(tasks, canonical, strict=True) if not ok and (m := missing_module(output))
    }
    broken = [t.id for t, (ok, _) in zip(tasks, canonical, strict=True) if not ok and t.id not in env_gaps]
    leaky = [t.id for t, (ok, _) in zip(tasks, empty, strict=True) if ok]
    fooled = [
        f"{name} on {t.id}"
        for (name, t), (ok, _) in zip(cheating, cheats, strict=True)
        if ok and datasets.grading(t) == "isolated"
    ]
    weak = [
        f"{name} on {t.id}"
        for (name, t), (ok, _) in zip(cheating, cheats, strict=True)
        if ok and datasets.grading(t) != "isolated"
    ]
    in_process = [t for t in tasks if datasets.grading(t) != "isolated"]
    elapsed = time.monotonic() - start
    title = f"self-check: {dataset} ({len(tasks)} tasks, {len(in_process)} graded in-process, {elapsed:.1f} s)"
    table = Table(title=title)
    for column in ("", "passed", "of"):
        table.add_column(column)
    table.add_row("canonical solutions", str(sum(ok for ok, _ in canonical)), str(len(tasks)))
    table.add_row("empty solutions", str(len(leaky)), str(len(tasks)))
    table.add_row(f"cheating solutions ({len(names)} kinds)", str(len(fooled)), str(len(cheating)))
    families: dict[str, list[bool]] = {}
    for (name, t), (ok, _) in zip(cheating, cheats, strict=True):
        if datasets.grading(t) == "isolated":
            families.setdefault(family(name), []).append(bool(ok))
    for name, outcomes in families.items():
        table.add_row(f"  {name}", str(sum(outcomes)), str(len(outcomes)))
    if in_process:
        table.add_row(
            "cheating solutions on in-process tasks (not robust)",
            str(len(weak)),
            str(sum(datasets.grading(t) != "isolated" for _, t in cheating)),
        )
    Console().print(table)
    if env_gaps:
        console.print(
            f"[yellow]{len(env_gaps)} tasks need modules not installed here: {sorted(set(env_gaps.values()))}"
        )
    if weak:
        console.print(f"[yellow]cheats passing on tasks graded in-process (not adversarially robust): {weak}")
    if broken or leaky or fooled:
        console.print(f"[red]canonical failing: {broken}\nempty passing: {leaky}\ncheats passing: {fooled}")
        raise typer.Exit(1)
