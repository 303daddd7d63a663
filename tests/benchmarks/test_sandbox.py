"""The five escapes the sandbox must contain (fork bomb, memory bomb, endless loop, network, writes
outside the task dir), plus the output cap and the sandbox user (who owns what the host writes for
it). Each test also shows the host unaffected afterwards. Issue 23: no channel between sandboxes
(kernel keyring, SysV IPC, /dev/shm, abstract sockets), /etc readable, the keyring filter never skipped."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from benchmarks.cgroups import BATCH_CPU_SHARES, Cgroups
from benchmarks.sandbox import (
    AUTOGROUP_TO_LEAST,
    BATCH_NICE,
    SANDBOX_UID,
    TASK_DIR,
    Limits,
    Sandbox,
    check_available,
    throwaway,
)

pytestmark = pytest.mark.usefixtures("bwrap")


def sandbox_processes() -> int:
    """Live (non-zombie) processes on the host owned by the sandbox uid: a contained bomb leaves none."""
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if os.stat(f"/proc/{pid}").st_uid == SANDBOX_UID and state != "Z":
                count += 1
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return count


def test_tools_are_available() -> None:
    check_available()


def test_runs_as_nobody_in_the_task_dir() -> None:
    with throwaway({"hello.py": "print('hi')"}) as sb:
        result = sb.run("id -u; pwd; python hello.py")
    assert result.ok, result.output
    assert result.output.split() == [str(SANDBOX_UID), TASK_DIR, "hi"]


def test_code_under_test_runs_at_the_least_cpu_priority() -> None:
    """Batch work: every process at nice 19; the run weighs the least, by its cpu cgroup's shares
    where june made one, else by its session's autogroup (the kernel weighs a session as one whole
    against june's services)."""
    cgroups = Cgroups(memory_mb=64, nproc=8, cpus=1.0)
    cpu_cgroup = "cpu" in cgroups.dirs
    try:
        if cpu_cgroup:
            for group in (cgroups.dirs["cpu"], cgroups.dirs["cpu"].parent):  # the run's and their parent's
                assert (group / "cpu.shares").read_text().strip() == str(BATCH_CPU_SHARES)
    finally:
        cgroups.close()
    with throwaway() as sb:
        result = sb.run("python -c 'import os; print(os.nice(0))'; cat /proc/self/autogroup 2>/dev/null || echo none")
    assert result.ok, result.output
    nice, autogroup = result.output.splitlines()
    assert nice == str(BATCH_NICE)
    assert cpu_cgroup or autogroup == "none" or autogroup.endswith(" nice 19"), autogroup


def test_a_session_of_its_own_gets_the_least_autogroup_share() -> None:
    """AUTOGROUP_TO_LEAST, as bwrap runs it after --new-session (a sandbox outside a cpu cgroup)."""
    if not Path("/proc/self/autogroup").exists():
        pytest.skip("this kernel has no autogroups")
    for _ in range(3):  # one after another: the kernel's 0.1 s between unprivileged writes is waited out
        out = subprocess.run(
            ["/bin/sh", "-c", AUTOGROUP_TO_LEAST, "sh", "cat", "/proc/self/autogroup"],
            capture_output=True, text=True, start_new_session=True, check=True,
        ).stdout  # fmt: skip
        assert out.strip().endswith(" nice 19"), out
    assert not Path("/proc/self/autogroup").read_text().strip().endswith(" nice 19")  # ours untouched


def test_files_in_new_folders_belong_to_the_sandbox_user() -> None:
    with throwaway({"pkg/sub/mod.py": "X = 1\n"}) as sb:
        result = sb.run("touch pkg/sub/new.py && python -c 'from pkg.sub.mod import X; print(X)'")
        with pytest.raises(ValueError, match="outside"):
            sb.write("../escape.txt", "x")
        assert not (sb.workdir.parent / "escape.txt").exists()
    assert result.ok and result.output == "1\n", result.output


def test_fork_bomb_is_capped_and_reaped() -> None:
    before = sandbox_processes()
    script = (
        "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
        "            time.sleep(60); os._exit(0)\n"
        "        n += 1\nexcept OSError as e:\n    print('capped at', n, e.errno)\n"
    )
    with throwaway({"bomb.py": script}, Limits(wall_s=20, nproc=32)) as sb:
        result = sb.run(["python", "bomb.py"])
        # the classic shell bomb: only the wall clock ends it, and killing it takes every child along
        classic = sb.run(":(){ :|:& };:; sleep 30", limits=Limits(wall_s=3, nproc=32))
    assert "capped at" in result.output, result.output
    assert int(result.output.split()[2]) < 32
    assert classic.timed_out
    deadline = time.monotonic() + 10
    while sandbox_processes() > before and time.monotonic() < deadline:
        time.sleep(0.2)  # the killed pid namespace takes a moment to tear down
    assert sandbox_processes() <= before


def test_memory_bomb_fails_inside() -> None:
    script = (
        "chunks = []\ntry:\n    while True:\n        chunks.append(bytearray(50 << 20))\n"
        "except MemoryError:\n    print('stopped at', len(chunks) * 50, 'MiB')\n"
    )
    with throwaway({"bomb.py": script}, Limits(memory_mb=512)) as sb:
        result = sb.run(["python", "bomb.py"])
    assert result.ok, result.output
    assert int(result.output.split()[2]) < 512


def test_endless_loop_hits_cpu_then_wall_limit() -> None:
    with throwaway(limits=Limits(cpu_s=1, wall_s=30)) as sb:
        spin = sb.run(["python", "-c", "while True: pass"])
        sleeper = sb.run("sleep 60", limits=Limits(wall_s=1))
    assert spin.returncode != 0 and not spin.timed_out and spin.wall_s < 25
    assert sleeper.timed_out and sleeper.returncode != 0 and sleeper.wall_s < 20
    assert "wall-clock limit" in sleeper.output


def test_no_network_even_to_the_hosts_loopback() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=2):  # control: reachable from the host
            server.accept()[0].close()
        server.settimeout(0.5)
        probe = (
            "import socket\ntry:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
            "    print('connected')\nexcept OSError as e:\n"
            "    print('blocked', type(e).__name__)\n"
        )
        with throwaway({"probe.py": probe}) as sb:
            result = sb.run(["python", "probe.py"])
            curl = sb.run(f"curl -sS -m 3 http://127.0.0.1:{port}/ || echo curl-failed")
        assert "blocked" in result.output, result.output
        assert "connected" not in curl.output
        with pytest.raises(TimeoutError):
            server.accept()  # nothing from the sandbox ever arrived


def test_writes_outside_the_task_dir_do_not_reach_the_host() -> None:
    name = f"june-escape-{uuid.uuid4().hex}"
    targets = [Path.home() / name, Path(__file__).resolve().parent / name, Path("/tmp") / name]
    commands = "; ".join(f"echo x > {t} && echo wrote {t}" for t in targets)
    with throwaway() as sb:
        result = sb.run(f"{commands}; echo inside > $HOME/ok.txt; touch {TASK_DIR}/ok2.txt")
        inside = (sb.workdir / "ok.txt").read_text()
        assert (sb.workdir / "ok2.txt").exists()
    assert inside == "inside\n"  # control: the task dir (also $HOME inside) is writable
    for target in targets:
        assert not target.exists(), f"{target} escaped the sandbox ({result.output})"


def test_output_is_capped() -> None:
    with throwaway(limits=Limits(output_bytes=1000)) as sb:
        result = sb.run("head -c 5000000 /dev/zero | tr '\\0' a")
    assert result.truncated
    assert result.output.startswith("a" * 1000)
    assert len(result.output) < 1200


# --- issue 23: nothing shared between sandboxes, /etc readable ------------------------------------

KEYRING_PROBE = """import ctypes, errno, platform, sys
add_key, keyctl = {"x86_64": (248, 250), "aarch64": (217, 219)}[platform.machine()]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
if sys.argv[1] == "add":  # into the user keyring (-4), which outlives the sandbox
    key = libc.syscall(add_key, b"user", b"june-channel", b"secret", 6, -4)
else:  # KEYCTL_SEARCH the user keyring for it
    key = libc.syscall(keyctl, 10, -4, b"user", b"june-channel", 0)
print(sys.argv[1], key, errno.errorcode.get(ctypes.get_errno(), 0))
"""


def test_no_kernel_keyring_channel_between_sandboxes() -> None:
    """A key added in one sandbox (same uid as every other) would be found by the next one; the
    keyring syscalls fail with EPERM instead, in both."""
    with throwaway({"k.py": KEYRING_PROBE}) as first:
        added = first.run(["python", "k.py", "add"])
    with throwaway({"k.py": KEYRING_PROBE}) as second:
        found = second.run(["python", "k.py", "search"])
    assert added.output.split()[1:] == ["-1", "EPERM"], added.output
    assert found.output.split()[1:] == ["-1", "EPERM"], found.output


def test_no_sysv_ipc_or_abstract_socket_between_running_sandboxes() -> None:
    """While one sandbox holds a SysV shared-memory segment, a message queue, a POSIX queue-like
    /dev/shm file and an abstract unix socket, a second sandbox running at the same time sees none."""
    holder = """import ctypes, os, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
print("shm", libc.shmget(0x6A756E65, 4096, 0o1666), "msg", libc.msgget(0x6A756E65, 0o1666), flush=True)
open("/dev/shm/june-channel", "w").write("secret")
s = socket.socket(socket.AF_UNIX)
s.bind("\\0june-channel")
s.listen()
time.sleep(float(sys.argv[1]))
"""
    prober = """import ctypes, os, socket
libc = ctypes.CDLL(None, use_errno=True)
print("shm", libc.shmget(0x6A756E65, 0, 0o666), "msg", libc.msgget(0x6A756E65, 0o666))
print("file", os.path.exists("/dev/shm/june-channel"))
s = socket.socket(socket.AF_UNIX)
try:
    s.connect("\\0june-channel"); print("connected")
except OSError as e:
    print("socket", type(e).__name__)
"""
    with throwaway({"h.py": holder}) as a, throwaway({"p.py": prober}) as b:
        running = a.start(["python", "h.py", "20"])
        try:
            time.sleep(3)  # the holder is up (its first line printed) before the probe starts
            probe = b.run(["python", "p.py"])
        finally:
            running.kill()
            held = running.wait()
    created = held.output.split()
    assert created[0] == "shm" and created[1] != "-1" and created[3] != "-1", held.output  # it did make them
    words = probe.output.split()
    assert words[:6] == ["shm", "-1", "msg", "-1", "file", "False"] and words[6] == "socket", probe.output


def test_bound_etc_files_are_readable() -> None:
    """/etc was created 0700 (as root) so the files bound into it were unreachable (fontconfig's
    'Cannot load default config file', no passwd entry for the sandbox user)."""
    with throwaway() as sb:
        result = sb.run(
            "stat -c %a /etc; python -c 'import pwd; print(pwd.getpwuid(65534).pw_name)'; "
            "ls /etc/ssl >/dev/null && echo ssl-ok; fc-match -q sans 2>&1 | head -1; echo done"
        )
    assert result.output.split()[:3] == ["755", "nobody", "ssl-ok"], result.output
    assert "Cannot load default config file" not in result.output, result.output


def test_the_keyring_filter_is_never_silently_skipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Where the filter cannot be built (an unknown machine) the sandbox refuses to start; a filter bwrap
    cannot load stops the command before it runs."""
    from benchmarks import sandbox

    monkeypatch.setattr(sandbox.platform, "machine", lambda: "sparc64")
    with pytest.raises(sandbox.SandboxUnavailable):
        sandbox.check_available()
    with pytest.raises(sandbox.SandboxUnavailable), throwaway() as sb:
        sb.run("echo ran")
    monkeypatch.undo()
    garbage = os.memfd_create("garbage")
    os.write(garbage, b"\x00" * 5)  # not a whole number of sock_filter entries
    os.lseek(garbage, 0, os.SEEK_SET)
    marker = tmp_path / "ran"
    try:
        done = subprocess.run(
            Sandbox(tmp_path).argv(["touch", "/tmp/task/ran"], Limits(), seccomp_fd=garbage),
            pass_fds=(garbage,),
            capture_output=True,
            timeout=60,
        )
    finally:
        os.close(garbage)
    assert done.returncode != 0 and not marker.exists(), done
