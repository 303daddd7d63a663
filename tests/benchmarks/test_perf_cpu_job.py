"""`--cpu-job` of the burst benchmarks (benchmarks/perf/cpu_job.py): one busy process while the block
runs, gone after it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from benchmarks.perf.cpu_job import cpu_job


def _cpu_ticks(pid: int) -> int:
    """utime + stime of `pid` in clock ticks (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_the_cpu_job_burns_cpu_while_the_block_runs_and_is_gone_after() -> None:
    with cpu_job() as pid:
        assert pid is not None
        deadline = time.monotonic() + 30
        while _cpu_ticks(pid) < 20 and time.monotonic() < deadline:  # 0.2 s of CPU at 100 ticks/s
            time.sleep(0.1)
        assert _cpu_ticks(pid) >= 20
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_no_cpu_job_when_not_asked() -> None:
    with cpu_job(False) as pid:
        assert pid is None
