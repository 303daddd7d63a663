"""Real services on 127.0.0.1 for the tests, each started once per session as a child process.

Fixtures give base URLs: `speech_url` (speech service), `llm_url` (vLLM on CPU with the offline
Qwen2.5-Coder-0.5B), `gateway_url` (gateway in front of both); `speech_services(engine)` and
`gateways(engine)` give the same with another speech engine (TTS_ENGINES), started on first use.
Each child logs to a file that is printed when it fails to start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.procs import ServiceFailed, free_port, running

__all__ = ["free_port", "require_program", "run_service"]


def require_program(program: str, package: str) -> str:
    """The path of a system program a test needs; without it the test is skipped with the Debian
    package to install, except under CI (`CI` set), where `.ci/run` installs every such package and
    a missing one fails the test instead of hiding it."""
    if path := shutil.which(program):
        return path
    message = f"{program} is not installed (Debian package {package}: apt install {package})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextlib.contextmanager
def run_service(
    name: str, args: list[str], env: dict[str, str], ready_url: str, log_dir: Path, timeout: float = 120
) -> Iterator[subprocess.Popen]:
    """Start `python args...` with `env` added, wait for `ready_url`, stop it afterwards; a start
    that fails fails the test with the end of the service's log."""
    log_path = log_dir / f"{name}.log"
    with contextlib.ExitStack() as stack:
        try:
            proc = stack.enter_context(
                running([sys.executable, *args], ready_url=ready_url, env=env, log=log_path, timeout=timeout, name=name)
            )
        except ServiceFailed as e:
            tail = log_path.read_text(errors="replace")[-4000:]
            pytest.fail(f"{e}\n--- {name} log ---\n{tail}")
        yield proc


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


TTS_ENGINES = ("piper", "kokoro")
"""The speech engines a deployment may choose (JUNE_SPEECH_TTS_ENGINE); the first is the default."""


def speech_log(engine: str) -> str:
    """The log file name (in `logs_dir`) of the speech service with `engine`."""
    return "speech.log" if engine == TTS_ENGINES[0] else f"speech-{engine}.log"


@pytest.fixture(scope="session")
def live_window(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The live window file (core.live_signal) the test services share, as `june up` sets it: the
    gateways write it, vLLM and the speech services read it."""
    return tmp_path_factory.mktemp("live") / "window"


@pytest.fixture(scope="session")
def speech_services(logs_dir: Path, live_window: Path) -> Iterator[Callable[[str], str]]:
    """`engine` → the base URL of a real speech service (faster-whisper + that TTS engine, offline
    defaults), each started once, on first use. A service for another engine than the default
    preloads no Whisper model (tests transcribe through the default one).

    JUNE_TEST_SPEECH_URL names an already running service with the default engine instead (for quick
    local iterations).
    """
    urls: dict[str, str] = {}
    with contextlib.ExitStack() as stack:

        def url_for(engine: str) -> str:
            if engine not in urls:
                if engine == TTS_ENGINES[0] and (given := os.environ.get("JUNE_TEST_SPEECH_URL")):
                    urls[engine] = given
                    return given
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                env = {"JUNE_SPEECH_HOST": "127.0.0.1", "JUNE_SPEECH_PORT": str(port), "JUNE_SPEECH_TTS_ENGINE": engine}
                env["JUNE_SPEECH_LIVE_SIGNAL"] = str(live_window)
                if engine != TTS_ENGINES[0]:
                    env["JUNE_SPEECH_PRELOAD"] = "[]"
                name = speech_log(engine).removesuffix(".log")
                stack.enter_context(run_service(name, ["-m", "speech"], env, f"{url}/ready", logs_dir, timeout=180))
                urls[engine] = url
            return urls[engine]

        yield url_for


@pytest.fixture(scope="session")
def speech_url(speech_services: Callable[[str], str]) -> str:
    """The real speech service with the default engine (see `speech_services`)."""
    return speech_services(TTS_ENGINES[0])


REASONING_ARGS = (
    "--reasoning-parser qwen3 --default-chat-template-kwargs '{\"enable_thinking\": false}'"
    " --structured-outputs-config.enable_in_reasoning true"
)
"""vLLM flags for the test server: Qwen3's reasoning parser, off by default; a grammar may shape the
reasoning too (Qwen2.5 never writes `</think>` by itself, so the reasoning test's grammar does)."""


VLLM_FIXTURES = frozenset({"llm_url"})
"""Fixtures that start vLLM (directly or through the fixtures they use): a test that uses one must be
marked `slow` (checked at collection, see `pytest_collection_modifyitems`)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse to run when a test that starts vLLM is not marked slow, so ``-m "not slow"`` never
    starts it. `fixturenames` is the whole closure: `gateway_url` brings in `llm_url` too.

    A test that starts vLLM some other way (``june up``) carries the mark by hand.
    """
    unmarked = [
        item.nodeid for item in items
        if VLLM_FIXTURES.intersection(getattr(item, "fixturenames", ())) and item.get_closest_marker("slow") is None
    ]  # fmt: skip
    if unmarked:
        raise pytest.UsageError(
            "these tests start vLLM (fixtures " + ", ".join(sorted(VLLM_FIXTURES)) + ") but are not marked "
            "@pytest.mark.slow (or pytestmark = pytest.mark.slow):\n  " + "\n  ".join(unmarked)
        )


@pytest.fixture(scope="session")
def llm_url(logs_dir: Path, live_window: Path) -> Iterator[str]:
    """vLLM's OpenAI server on CPU with the embedded default model (first run converts it: ~1 min).

    It also runs vLLM's `qwen3` reasoning parser, the GPU presets' own (REASONING_ARGS), with
    thinking off unless a request asks for it: every other request is answered as by the plain
    CPU server, and tests/llm can check that a reasoning trace stays out of `content`.
    JUNE_TEST_LLM_URL names an already running one instead (vLLM on CPU takes ~8 GB and ~1 min;
    start it with JUNE_LLM_EXTRA_ARGS set to REASONING_ARGS for the reasoning test).
    """
    if url := os.environ.get("JUNE_TEST_LLM_URL"):
        yield url
        return
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"JUNE_LLM_HOST": "127.0.0.1", "JUNE_LLM_PORT": str(port), "JUNE_LLM_EXTRA_ARGS": REASONING_ARGS}
    env["JUNE_LLM_LIVE_SIGNAL"] = str(live_window)
    with run_service("llm", ["-m", "june.llm"], env, f"{url}/health", logs_dir, timeout=600):
        yield url


@pytest.fixture(scope="session")
def gateways(
    logs_dir: Path, speech_services: Callable[[str], str], llm_url: str, live_window: Path
) -> Iterator[Callable[[str], str]]:
    """`engine` → the base URL of a gateway (without API keys) in front of vLLM and the real speech
    service with that engine, each started once, on first use."""
    urls: dict[str, str] = {}
    with contextlib.ExitStack() as stack:

        def url_for(engine: str) -> str:
            if engine not in urls:
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                env = {
                    "JUNE_GATEWAY_HOST": "127.0.0.1",
                    "JUNE_GATEWAY_PORT": str(port),
                    "JUNE_GATEWAY_LLM_URL": llm_url,
                    "JUNE_GATEWAY_SPEECH_URL": speech_services(engine),
                    "JUNE_GATEWAY_LIVE_SIGNAL": str(live_window),
                }
                name = "gateway" if engine == TTS_ENGINES[0] else f"gateway-{engine}"
                stack.enter_context(run_service(name, ["-m", "gateway"], env, f"{url}/health", logs_dir, timeout=60))
                urls[engine] = url
            return urls[engine]

        yield url_for


@pytest.fixture(scope="session")
def gateway_url(gateways: Callable[[str], str]) -> str:
    """The gateway in front of vLLM and the real speech service with the default engine."""
    return gateways(TTS_ENGINES[0])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server (Debian package) on 127.0.0.1, in memory only; flushed per session."""
    redis_server = require_program("redis-server", "redis-server")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            redis_server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("redis-server did not start (apt install redis-server)")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
