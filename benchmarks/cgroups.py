"""cgroup v1 bounds of one sandbox run: memory of all its processes together (tmpfs pages included),
process count (pids) and CPU quota, where the host allows them (root, writable v1 controllers);
`benchmarks.sandbox` falls back to per-process rlimits elsewhere. Groups live under
/sys/fs/cgroup/CONTROLLER/june/PID-ID, so `sweep_cgroups` can remove what a killed run left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

CONTROLLERS = ("memory", "pids", "cpu")

CGROUP_FS = Path("/sys/fs/cgroup")

BATCH_CPU_SHARES = 2
"""cpu.shares of the runs' parent group (/sys/fs/cgroup/cpu/june) and of each run's group: the
kernel's least, where a session's autogroup weighs 1024. Code under test is batch work, so on a busy
box it gets a core only when june's services leave one."""


def cgroup_base(controller: str) -> Path | None:
    """The writable cgroup v1 folder june's per-run groups go under, or None (non-root, v2, read-only)."""
    if os.geteuid() != 0 or not (CGROUP_FS / controller / "cgroup.procs").exists():
        return None
    base = CGROUP_FS / controller / "june"
    try:
        base.mkdir(exist_ok=True)
    except OSError:
        return None
    if controller == "cpu":  # the runs' parent weighs against june's services, so it is the one to lower
        with contextlib.suppress(OSError):
            (base / "cpu.shares").write_text(str(BATCH_CPU_SHARES))
    return base


class Cgroups:
    """One run's cgroup v1 groups (memory, pids, cpu) where the host allows them; `procs` are the
    cgroup.procs files a process joins before exec'ing the sandbox."""

    def __init__(self, memory_mb: int, nproc: int, cpus: float) -> None:
        """Groups for `memory_mb` MiB (memory and swap of all processes, tmpfs pages included),
        `nproc` processes and threads, and `cpus` cores of CPU quota at the least CPU weight
        (`BATCH_CPU_SHARES`) (`benchmarks.sandbox.Limits`)."""
        self.dirs: dict[str, Path] = {}
        name = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        settings = {
            "memory": [("memory.limit_in_bytes", memory_mb << 20), ("memory.memsw.limit_in_bytes", memory_mb << 20)],
            "pids": [("pids.max", nproc)],
            "cpu": [
                ("cpu.cfs_period_us", 100_000),
                ("cpu.cfs_quota_us", max(int(cpus * 100_000), 1000)),
                ("cpu.shares", BATCH_CPU_SHARES),
            ],
        }
        for controller, values in settings.items():
            base = cgroup_base(controller)
            if base is None:
                continue
            folder = base / name
            try:
                folder.mkdir()
            except OSError:
                continue
            self.dirs[controller] = folder
            for file, value in values:
                with contextlib.suppress(OSError):  # memsw exists only with swap accounting
                    (folder / file).write_text(str(value))

    @property
    def procs(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def _count(self, controller: str, file: str, key: str) -> int:
        folder = self.dirs.get(controller)
        if folder is None:
            return 0
        with contextlib.suppress(OSError, ValueError):
            for line in (folder / file).read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
        return 0

    def memory_hit(self) -> bool:
        return self._count("memory", "memory.oom_control", "oom_kill") > 0

    def pids_hit(self) -> bool:
        return self._count("pids", "pids.events", "max") > 0

    def close(self) -> None:
        """Kill whatever is left in the groups, then remove them (bounded: a few seconds at most)."""
        deadline = time.monotonic() + 5
        for folder in self.dirs.values():
            while time.monotonic() < deadline:
                try:
                    pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(OSError):
                    folder.rmdir()
                    break
                time.sleep(0.05)


JOIN = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
"""sh: join each cgroup.procs file given before `--`, then exec the rest (so nothing runs outside them)."""


def sweep_cgroups(alive: Callable[[int], bool]) -> int:
    """Remove june's groups whose run (the pid in `PID-ID`) is no longer `alive`; returns how many."""
    removed = 0
    for controller in CONTROLLERS:
        for folder in (CGROUP_FS / controller / "june").glob("*-*"):
            pid = folder.name.split("-")[0]
            if pid.isdigit() and not alive(int(pid)):
                with contextlib.suppress(OSError):
                    folder.rmdir()
                    removed += 1
    return removed
