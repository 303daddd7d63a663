"""Real services on 127.0.0.1 for the tests, each started once per session as a child process.

Fixtures give base URLs: `speech_url` (speech service), `llm_url` (vLLM on CPU with the offline
Qwen2.5-Coder-0.5B), `gateway_url` (gateway in front of both). Each child logs to a file that is
printed when it fails to start.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from june.procs import ServiceFailed, wait_ready


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def run_service(
    name: str, args: list[str], env: dict[str, str], ready_url: str, log_dir: Path, timeout: float = 120
) -> Iterator[subprocess.Popen]:
    """Start `python args...` with `env` added, wait for `ready_url`, stop it afterwards."""
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, *args], env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            try:
                wait_ready(ready_url, timeout=timeout, proc=proc, name=name)
            except ServiceFailed as e:
                tail = log_path.read_text(errors="replace")[-4000:]
                pytest.fail(f"{e}\n--- {name} log ---\n{tail}")
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


@pytest.fixture(scope="session")
def speech_url(logs_dir: Path) -> Iterator[str]:
    """The real speech service (faster-whisper + Kokoro ONNX, offline defaults)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"JUNE_SPEECH_HOST": "127.0.0.1", "JUNE_SPEECH_PORT": str(port)}
    with run_service("speech", ["-m", "speech"], env, f"{url}/health", logs_dir, timeout=180):
        yield url


@pytest.fixture(scope="session")
def llm_url(logs_dir: Path) -> Iterator[str]:
    """vLLM's OpenAI server on CPU with the embedded default model (first run converts it: ~1 min)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"JUNE_LLM_HOST": "127.0.0.1", "JUNE_LLM_PORT": str(port)}
    with run_service("llm", ["-m", "june.llm"], env, f"{url}/health", logs_dir, timeout=600):
        yield url


@pytest.fixture(scope="session")
def gateway_url(logs_dir: Path, speech_url: str, llm_url: str) -> Iterator[str]:
    """The gateway in front of the real speech service and vLLM, without API keys."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "JUNE_GATEWAY_HOST": "127.0.0.1",
        "JUNE_GATEWAY_PORT": str(port),
        "JUNE_GATEWAY_LLM_URL": llm_url,
        "JUNE_GATEWAY_SPEECH_URL": speech_url,
    }
    with run_service("gateway", ["-m", "gateway"], env, f"{url}/health", logs_dir, timeout=60):
        yield url
