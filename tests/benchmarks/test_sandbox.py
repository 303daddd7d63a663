"""The five escapes the sandbox must contain (fork bomb, memory bomb, endless loop, network, writes
outside the task dir), plus the output cap and the sandbox user (who owns what the host writes for
it). Each test also shows the host unaffected afterwards."""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from benchmarks.sandbox import SANDBOX_UID, TASK_DIR, Limits, check_available, throwaway

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
