"""Run untrusted commands in a throwaway directory under bubblewrap (Debian package `bubblewrap`).

Inside the sandbox: no network (all namespaces unshared), the host filesystem read-only, the task
directory (seen as `/tmp/task`) the only writable host path, a small tmpfs on /tmp and over the
host's $HOME, uid/gid 65534 (nobody), and prlimit's CPU-time, address-space, process-count and
file-size limits. Output is capped at `Limits.output_bytes`; a wall-clock timeout kills the lot.

When june runs as root (CI, containers), RLIMIT_NPROC does not bind a process whose outer uid is 0,
so the inner bwrap runs as the outer uid 65534 (`setpriv`); an outer, mount-only bwrap first makes
the Python installation reachable for that uid when it lives under an unreadable dir such as /root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SANDBOX_UID = 65534
TASK_DIR = "/tmp/task"
"""Where the task directory appears inside the sandbox (also the sandbox's $HOME and cwd)."""


class SandboxUnavailable(RuntimeError):
    """bubblewrap (or setpriv/prlimit) is missing, or user namespaces are disabled."""


@dataclass(frozen=True)
class Limits:
    """Per-command resource limits."""

    wall_s: float = 60.0
    """Wall-clock seconds before the whole sandbox is killed."""
    cpu_s: int = 30
    """CPU seconds per process (RLIMIT_CPU; SIGKILL after)."""
    memory_mb: int = 2048
    """Address space per process in MiB (RLIMIT_AS): allocations beyond it fail with ENOMEM."""
    nproc: int = 64
    """Processes and threads the sandbox user may have at once (RLIMIT_NPROC, per user namespace)."""
    file_mb: int = 64
    """Largest file a process may write, MiB (RLIMIT_FSIZE)."""
    tmp_mb: int = 256
    """Size of the tmpfs mounted on /tmp and over $HOME, MiB."""
    output_bytes: int = 64 * 1024
    """Captured stdout+stderr kept; the rest is drained and dropped."""


@dataclass
class Result:
    """What a sandboxed command did. `returncode` is negative for a signal (-9: killed)."""

    returncode: int
    output: str
    timed_out: bool
    truncated: bool
    wall_s: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def _unreadable_ancestor(path: Path) -> Path | None:
    """The first ancestor of `path` that others may not traverse (e.g. /root, mode 0700)."""
    for parent in reversed(path.parents):
        if parent != Path("/") and not os.stat(parent).st_mode & stat.S_IXOTH:
            return parent
    return None


def _python_paths() -> list[Path]:
    """The interpreter's installation and the active venv, which the sandboxed tests import from."""
    paths = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent.parent}
    return sorted(paths)


def _expose(paths: list[Path], hide: list[Path], tmp_mb: int = 16) -> list[str]:
    """bwrap args: a tmpfs over each dir in `hide` (and each unreadable ancestor), then `paths` re-bound read-only."""
    args: list[str] = []
    size = ["--size", str(tmp_mb << 20)]
    covered: set[Path] = set()
    for top in hide:
        args += [*size, "--perms", "0755", "--tmpfs", str(top)]
        covered.add(top)
    for path in paths:
        top = next((h for h in covered if path.is_relative_to(h)), None) or _unreadable_ancestor(path)
        if top is None:
            continue
        if top not in covered:
            args += [*size, "--perms", "0755", "--tmpfs", str(top)]
            covered.add(top)
        for mid in reversed(path.parents):
            if mid.is_relative_to(top) and mid != top:
                args += ["--perms", "0755", "--dir", str(mid)]
        args += ["--ro-bind", str(path), str(path)]
    return args


def check_available() -> None:
    """Raise SandboxUnavailable with an install hint unless bwrap, prlimit (and setpriv as root) are there."""
    needed = ["bwrap", "prlimit"] + (["setpriv"] if os.geteuid() == 0 else [])
    if missing := [tool for tool in needed if shutil.which(tool) is None]:
        raise SandboxUnavailable(f"missing {', '.join(missing)}: apt install bubblewrap util-linux")


class Sandbox:
    """One task directory on the host, and a way to run commands inside it.

    `run` never raises for what the command does: limits show up in `Result`.
    """

    def __init__(self, workdir: Path, limits: Limits | None = None) -> None:
        self.workdir = Path(workdir).resolve()
        self.limits = limits or Limits()

    def argv(self, command: list[str], limits: Limits) -> list[str]:
        """The full command line: [outer bwrap + setpriv when root] + inner bwrap + prlimit + command."""
        home = Path.home().resolve()
        hide = [home] if home != Path("/") else []
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": TASK_DIR,
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "PYTHONDONTWRITEBYTECODE": "1",
            "MPLBACKEND": "Agg",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }
        python_bin = str(Path(sys.executable).parent)
        env["PATH"] = f"{python_bin}:{env['PATH']}"
        inner = ["bwrap", "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
        inner += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        inner += ["--size", str(limits.tmp_mb << 20), "--perms", "1777", "--tmpfs", "/tmp"]
        inner += _expose(_python_paths(), hide, limits.tmp_mb)
        inner += ["--bind", str(self.workdir), TASK_DIR, "--chdir", TASK_DIR]
        inner += ["--die-with-parent", "--new-session", "--clearenv"]
        for key, value in env.items():
            inner += ["--setenv", key, value]
        inner += [
            "prlimit",
            f"--cpu={limits.cpu_s}",
            f"--as={limits.memory_mb << 20}",
            f"--nproc={limits.nproc}",
            f"--fsize={limits.file_mb << 20}",
            "--core=0",
            "--",
            *command,
        ]
        if os.geteuid() != 0:
            return inner
        # Root: a mount-only outer bwrap re-exposes the Python under /root to uid 65534, then setpriv
        # drops to that uid so RLIMIT_NPROC binds.
        outer = ["bwrap", "--dev-bind", "/", "/", *_expose(_python_paths(), []), "--die-with-parent", "--"]
        drop = ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups"]
        drop += ["--inh-caps=-all", "--bounding-set=-all"]
        return [*outer, *drop, *inner]

    def run(self, command: str | list[str], *, limits: Limits | None = None) -> Result:
        """Run `command` (a string goes to `bash -c`) in the task dir; returns its Result."""
        limits = limits or self.limits
        argv = ["bash", "-c", command] if isinstance(command, str) else list(command)
        start = time.monotonic()
        proc = subprocess.Popen(
            self.argv(argv, limits),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        kept = bytearray()
        dropped = 0

        def drain() -> None:
            nonlocal dropped
            assert proc.stdout is not None
            while chunk := proc.stdout.read1(65536):
                room = limits.output_bytes - len(kept)
                kept.extend(chunk[: max(room, 0)])
                dropped += max(len(chunk) - max(room, 0), 0)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        timed_out = False
        try:
            proc.wait(timeout=limits.wall_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            # Killing bwrap's monitor kills the sandbox's pid namespace (--die-with-parent).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(timeout=5)
        output = kept.decode(errors="replace")
        if dropped:
            output += f"\n[... {dropped} more bytes of output dropped]"
        if timed_out:
            output += f"\n[killed: wall-clock limit of {limits.wall_s:g} s]"
        return Result(proc.returncode, output, timed_out, bool(dropped), time.monotonic() - start)

    def give(self, path: Path) -> None:
        """Hand a file the host wrote in the task dir to the sandbox user (when running as root)."""
        if os.geteuid() == 0:
            os.chown(path, SANDBOX_UID, SANDBOX_UID)

    def resolve(self, relative: str | Path) -> Path:
        """`relative` (to the task dir; an absolute host path stays as is) resolved, symlinks included.

        Raises ValueError when the result lies outside the task dir.
        """
        resolved = (self.workdir / relative).resolve()
        if not resolved.is_relative_to(self.workdir):
            raise ValueError(f"{relative} is outside the task dir {self.workdir}")
        return resolved

    def write(self, relative: str | Path, text: str) -> Path:
        """Write `text` to `resolve(relative)`, making missing folders; the new folders and the file go to the
        sandbox user. Returns the file's host path; raises ValueError outside the task dir."""
        target = self.resolve(relative)
        for parent in reversed(target.relative_to(self.workdir).parents[:-1]):
            folder = self.workdir / parent
            if not folder.exists():
                folder.mkdir()
                self.give(folder)
        target.write_text(text)
        self.give(target)
        return target


@contextlib.contextmanager
def throwaway(files: dict[str, str] | None = None, limits: Limits | None = None, prefix: str = "june-task-") -> Iterator[Sandbox]:
    """A fresh task dir holding `files` (relative path -> text), owned by the sandbox user; removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        sandbox = Sandbox(root, limits)
        sandbox.give(root)
        for rel, text in (files or {}).items():
            sandbox.write(rel, text)
        yield sandbox
    finally:
        shutil.rmtree(root, ignore_errors=True)
