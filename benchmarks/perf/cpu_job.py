"""One other CPU-bound process on the box, for the burst benchmarks' `--cpu-job` (`june bench load`,
`june bench telegram`): issue 25's "with one other CPU job on the box"."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Annotated

import typer

CpuJobOption = Annotated[
    bool, typer.Option("--cpu-job/--no-cpu-job", help="Run one other CPU-bound process for the whole burst.")
]
"""The burst benchmarks' `--cpu-job` option (see `cpu_job`)."""


@contextlib.contextmanager
def cpu_job(enabled: bool = True) -> Iterator[int | None]:
    """One CPU-bound process while the block runs (a Python busy loop at normal priority: one core's
    worth of work nobody is waiting for); yields its pid, None when not `enabled`. It is killed when
    the block ends."""
    if not enabled:
        yield None
        return
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
