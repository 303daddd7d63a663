"""`june up` as a user runs it: a child that cannot start is reported, and the stack stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from core.procs import wait_ready
from june.stack import Service, plan
from tests.conftest import free_port


def test_up_reports_a_child_that_dies_and_stops_the_rest() -> None:
    # No GPU here: the 30B preset must refuse at preflight, and `june up` must say so and exit 1.
    env = {
        **os.environ,
        "JUNE_LLM_MODEL": "qwen3-30b-a3b-awq",
        "JUNE_LLM_PORT": str(free_port()),
        "JUNE_SPEECH_PORT": str(free_port()),
        "JUNE_GATEWAY_PORT": str(free_port()),
        "JUNE_TELEGRAM_TOKEN": "",
        "COLUMNS": "200",
    }
    done = subprocess.run([sys.executable, "-m", "june", "up"], env=env, capture_output=True, text=True, timeout=180)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "llm exited with code" in out, out
    assert "GPU" in out, out  # the preflight's reason reaches the user
    assert "stopped." in out


def test_a_bot_without_an_http_port_is_not_polled(monkeypatch: pytest.MonkeyPatch) -> None:
    # Port 0: the bot serves no HTTP; june up must not wait 15 minutes on http://127.0.0.1:0/health.
    monkeypatch.setenv("JUNE_TELEGRAM_TOKEN", "123:abc")
    monkeypatch.setenv("JUNE_TELEGRAM_PORT", "0")
    monkeypatch.setenv("JUNE_DISCORD_TOKEN", "token")
    monkeypatch.setenv("JUNE_DISCORD_PORT", str(free_port()))
    bots = {s.name: s.ready_url for s in plan(with_bots=True).services if s.module.startswith("bots.")}
    assert bots["telegram"] == "" and bots["discord"].endswith("/health"), bots


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "default"),
        ({"JUNE_LLM_LIVE_SIGNAL": "/run/june/live"}, "/run/june/live"),
        ({"JUNE_GATEWAY_LIVE_SIGNAL": ""}, ""),
    ],
    ids=["default", "named-once", "turned-off"],
)
def test_the_stack_shares_one_live_window_file(monkeypatch: pytest.MonkeyPatch, env: dict, expected: str) -> None:
    """The gateway writes the live window, vLLM and the speech service read it: `june up` gives all three
    the same file (one per gateway port), the one a variable names, or "" (off) to all."""
    for name in ("JUNE_GATEWAY_LIVE_SIGNAL", "JUNE_LLM_LIVE_SIGNAL", "JUNE_SPEECH_LIVE_SIGNAL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("JUNE_GATEWAY_PORT", "8123")
    services = {s.name: s.env for s in plan(with_bots=False).services}
    files = {services["llm"]["JUNE_LLM_LIVE_SIGNAL"], services["speech"]["JUNE_SPEECH_LIVE_SIGNAL"]}
    files.add(services["gateway"]["JUNE_GATEWAY_LIVE_SIGNAL"])
    assert len(files) == 1, files
    (file,) = files
    assert file.endswith("june-live-8123") if expected == "default" else file == expected


def _processes_with(marker: str) -> list[int]:
    """Pids whose environment holds `marker` (a KEY=VALUE line)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            pass
    return found


@pytest.mark.slow  # `june up` starts vLLM (no fixture: the check in tests/conftest.py cannot see it)
@pytest.mark.parametrize(
    "signals",
    [[signal.SIGINT], [signal.SIGINT, signal.SIGTERM]],
    ids=["ctrl-c", "ctrl-c-then-sigterm-at-once"],  # a second signal while stopping must not orphan children
)
def test_ctrl_c_stops_every_child(signals: list[signal.Signals]) -> None:
    speech_port, gateway_port = free_port(), free_port()
    marker = f"JUNE_TEST_MARKER={os.getpid()}-{gateway_port}"
    key, value = marker.split("=")
    env = {
        **os.environ,
        key: value,
        "JUNE_LLM_PORT": str(free_port()),
        "JUNE_SPEECH_PORT": str(speech_port),
        "JUNE_GATEWAY_PORT": str(gateway_port),
        "JUNE_TELEGRAM_TOKEN": "",
        "JUNE_DISCORD_TOKEN": "",
    }
    # Started like a background job of a script: SIGINT arrives ignored, and must still stop june.
    up = subprocess.Popen(
        [sys.executable, "-m", "june", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        # The gateway comes up in seconds; vLLM is still loading then.
        wait_ready(f"http://127.0.0.1:{gateway_port}/health", timeout=120, proc=up, name="june up's gateway")
        children = _processes_with(marker)
        assert len(children) >= 4  # june up, llm, speech, gateway
        # One session, so one autogroup (Linux): each child in a session of its own made the kernel
        # split the cores between the services first, and the speech service's niced background
        # threads then took as much CPU as vLLM's live decode (june.stack, Service.start).
        assert {os.getsid(pid) for pid in children} == {os.getsid(up.pid)}
        assert all(os.getpgid(pid) != os.getpgid(up.pid) for pid in children if pid != up.pid)  # Ctrl-C: june only
        for sig in signals:
            up.send_signal(sig)
        out = up.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 0, out
    assert "stopped." in out
    time.sleep(1)
    assert _processes_with(marker) == [], out[-2000:]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{gateway_port}/health", timeout=2)


def test_a_starting_service_shows_its_phase_and_a_failed_one_its_reason() -> None:
    llm = Service("llm", "june.llm", "http://127.0.0.1:1/health")
    assert llm.phase == "starting"
    llm.tail.append("INFO june.llm.models: joining qwen2.5-coder-0.5b-instruct GGUF parts into /x/model.gguf")
    assert llm.phase == "joining model parts"
    llm.tail.append("Converting and de-quantizing GGUF tensors...:  42%|████▏     | 123/291 [00:10<00:14, 12.0it/s]")
    assert llm.phase == "converting 123/291 tensors"
    llm.tail.append("Loading safetensors checkpoint shards:   0% Completed | 0/1 [00:00<?, ?it/s]")
    assert llm.phase == "loading weights"
    llm.tail.extend(["ValueError: not enough GPU memory for the KV cache", "shutting down"])
    assert llm.why() == "ValueError: not enough GPU memory for the KV cache"
    llm.ready_after = 3.0
    assert llm.phase == "ready"
