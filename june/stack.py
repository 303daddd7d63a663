"""`june up`: run the whole stack as child processes, report readiness, stop it cleanly.

Plain `subprocess` management: each service is `python -m <module>` with its settings in the
environment; their output is streamed with a `[name]` prefix. A child that exits while the stack
runs is reported with its exit code and the last lines it printed, and the stack stops with it.
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from core.procs import ServiceFailed, local_url, poll_ready
from core.served import served_model

console = Console(highlight=False)

_COLORS = {"llm": "magenta", "speech": "cyan", "gateway": "green", "telegram": "yellow", "discord": "blue"}

# What a child's log lines say about its start, newest match wins (june's own log lines, vLLM's, uvicorn's).
_PHASES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"joining .*parts", re.I), "joining model parts"),
    (re.compile(r"GGUF tensors.*?(\d+)/(\d+)", re.I), "converting {}/{} tensors"),
    (re.compile(r"converting .* to safetensors", re.I), "converting the model (about a minute)"),
    (
        re.compile(r"Loading safetensors checkpoint shards|Loading weights|loading (whisper|model|kokoro)", re.I),
        "loading weights",
    ),
    (re.compile(r"loaded model '([^']+)'", re.I), "loaded {}"),
    (re.compile(r"KV cache|warm|compil|profil|graph", re.I), "warming up"),
    (re.compile(r"Started server process|Application startup|Uvicorn running", re.I), "serving, checking readiness"),
]
_ERROR = re.compile(r"error|exception|failed|refus|cannot|not enough|no .*gpu", re.I)


@dataclass
class Service:
    """One child process of the stack: `python -m module`, ready when `ready_url` answers 200 (no URL: once started)."""

    name: str
    module: str
    ready_url: str
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout: float = 900.0
    proc: subprocess.Popen | None = None
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=30))
    pump: threading.Thread | None = None
    started: float = 0.0
    """time.monotonic() when the child was spawned."""
    ready_after: float | None = None
    """Seconds from its own start until it answered `ready_url` (None: not yet)."""

    @property
    def phase(self) -> str:
        """What the child is doing now, from the last line it printed ("converting 123/291 tensors", …)."""
        if self.ready_after is not None:
            return "ready"
        for line in reversed(self.tail):
            for pattern, label in _PHASES:
                if m := pattern.search(line):
                    return label.format(*m.groups())
        return "starting"

    def why(self) -> str:
        """The child's own last word on a failure: the reason it gave for not serving (`failure`),
        else its last error-looking line, else its last line."""
        if reason := self.failure():
            return f"{self.name} cannot serve: {reason}"
        lines = [line.strip() for line in self.last_lines() if line.strip()]
        errors = [line for line in lines if _ERROR.search(line)]
        return (errors or lines or ["(it printed nothing)"])[-1][:300]

    def start(self, quiet: bool) -> None:
        """Spawn the child in its own process group and stream its output with a prefix.

        A process group, not a session of its own: Linux's autogroup (sched_autogroup_enabled, on in
        most distributions) gives each session one share of the cores and applies nice only within
        it, so children in sessions of their own made the speech service's niced background threads
        (speech.lanes) as strong as vLLM's whole decode: measured, a nice-19 busy thread in another
        session cut vLLM's decode from 18 to 12.6 tok/s. In june up's session every thread competes
        by its own nice."""
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,  # Ctrl-C reaches us only; we stop children in order
        )
        self.pump = threading.Thread(target=self._pump, args=(quiet,), daemon=True)
        self.pump.start()

    def _pump(self, quiet: bool) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        color = _COLORS.get(self.name, "white")
        for raw in self.proc.stdout:
            # A progress bar (tqdm) redraws its line with \r: each redraw counts as a line of its own.
            *redraws, line = [part.strip() for part in raw.decode(errors="replace").split("\r") if part.strip()] or [""]
            self.tail.extend(redraws)
            self.tail.append(line)
            if not quiet:
                console.print(f"[{color}]{self.name:>8} |[/] {escape(line)}", markup=True, soft_wrap=True)

    def last_lines(self) -> list[str]:
        """What the child printed last (up to 30 lines), once its output has been read to the end."""
        if self.pump is not None:
            self.pump.join(timeout=2.0)
        return list(self.tail)

    def failure(self) -> str | None:
        """The reason a service gave for not serving: its last "cannot serve: …" line (the speech
        service prints one when a model fails to preload: which model and why), or None."""
        for line in reversed(self.last_lines()):
            if "cannot serve: " in line:
                return line.split("cannot serve: ", 1)[1]
        return None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the child's process group, then SIGKILL after `timeout` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@dataclass
class Plan:
    """What `june up` starts, and where users reach it."""

    services: list[Service]
    gateway_url: str
    """The gateway's base URL as a client on this machine reaches it."""
    api_key: str | None
    """The gateway's first API key, for the printed curl; None when the gateway is open."""


def live_window(gateway_port: int) -> str:
    """The live window file (core.live_signal) the stack's gateway, vLLM and speech service share: the
    one JUNE_GATEWAY_LIVE_SIGNAL, JUNE_LLM_LIVE_SIGNAL or JUNE_SPEECH_LIVE_SIGNAL names ("" turns the
    pause off for all three), else `june-live-<gateway port>` in the temporary folder (one per stack
    on this host)."""
    for name in ("JUNE_GATEWAY_LIVE_SIGNAL", "JUNE_LLM_LIVE_SIGNAL", "JUNE_SPEECH_LIVE_SIGNAL"):
        if name in os.environ:
            return os.environ[name]
    return str(Path(tempfile.gettempdir()) / f"june-live-{gateway_port}")


def plan(*, with_bots: bool = True) -> Plan:
    """The services of the stack on their settings (env `JUNE_*`); bots only when tokens are set."""
    from bots.settings import DiscordSettings, TelegramSettings
    from gateway.settings import GatewaySettings
    from june.llm.settings import LLMSettings
    from speech.settings import SpeechSettings

    speech, llm, gw = SpeechSettings(), LLMSettings(), GatewaySettings()
    speech_url, llm_url, gw_url = (local_url(s.host, s.port) for s in (speech, llm, gw))
    window = live_window(gw.port)
    services = [
        Service("llm", "june.llm", f"{llm_url}/health", {"JUNE_LLM_LIVE_SIGNAL": window}),
        Service("speech", "speech", f"{speech_url}/ready", {"JUNE_SPEECH_LIVE_SIGNAL": window}),
        Service(
            "gateway",
            "gateway",
            f"{gw_url}/health",
            {
                "JUNE_GATEWAY_LLM_URL": os.environ.get("JUNE_GATEWAY_LLM_URL", llm_url),
                "JUNE_GATEWAY_SPEECH_URL": os.environ.get("JUNE_GATEWAY_SPEECH_URL", speech_url),
                "JUNE_GATEWAY_LIVE_SIGNAL": window,
            },
        ),
    ]
    if with_bots:
        bot_env = {"JUNE_BOT_BASE_URL": os.environ.get("JUNE_BOT_BASE_URL", gw_url)}
        for name, settings_class in (("telegram", TelegramSettings), ("discord", DiscordSettings)):
            if os.environ.get(f"JUNE_{name.upper()}_TOKEN"):
                bot = settings_class()
                ready = f"{local_url(bot.host, bot.port)}/health" if bot.port else ""  # port 0: no HTTP to poll
                services.append(Service(name, f"bots.{name}", ready, bot_env))
    keys = [k.get_secret_value() for k in gw.api_keys]
    return Plan(services, gw_url, keys[0] if keys else None)


def _interrupt(*_: object) -> None:
    """SIGINT/SIGTERM handler: stop the stack, once. Both signals are ignored from here on, so a
    second one arriving while the children stop (Ctrl-C twice, or a supervisor's SIGTERM right
    after) cannot cut the stopping short and orphan them; each child still gets SIGKILL on a timeout."""
    _ignore_stop_signals()
    raise KeyboardInterrupt


def _ignore_stop_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def run(plan: Plan, *, quiet: bool = False) -> int:
    """Start the plan's services, wait until each is ready, then supervise until Ctrl-C or a child dies.

    Returns the process exit code: 0 after Ctrl-C/SIGTERM, 1 when a child failed.
    """
    # Ctrl-C and SIGTERM both stop the stack, also where SIGINT came in ignored (a background job).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    services = plan.services
    t0 = time.monotonic()
    try:
        for s in services:
            s.start(quiet)
        _wait_ready(services)
        for s in services:
            if s.ready_after is not None:
                console.print(f"[bold]{s.name}[/] ready ({s.ready_after:.1f} s)")
        _banner(time.monotonic() - t0, plan.gateway_url, plan.api_key)
        while True:
            for s in services:
                if s.proc is not None and s.proc.poll() is not None:
                    raise ServiceFailed(f"{s.name} exited with code {s.proc.returncode}")
            time.sleep(0.5)
    except ServiceFailed as e:
        console.print(f"[bold red]june up: {e}[/]", markup=True, highlight=False)
        for s in services:
            if s.proc is not None and s.proc.poll() is not None and (lines := s.last_lines()):
                console.print(f"[red]last lines of {s.name}:[/]")
                console.print("\n".join(lines), markup=False)
                if reason := s.failure():
                    console.print(f"june up: {s.name} cannot serve: {reason}", style="bold red", markup=False)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        _ignore_stop_signals()  # a signal now must not orphan children (also after ServiceFailed)
        console.print("stopping june …")
        for s in reversed(services):
            s.stop()
        console.print("stopped.")


def _wait_ready(services: list[Service], poll_s: float = 0.5) -> None:
    """Wait for every service at once (`core.procs.poll_ready`), showing each one's phase and
    elapsed time live; each `ready_after` is then that service's own start time. Raises
    ServiceFailed, with the child's own last error line, as soon as one exits or outlasts its
    `ready_timeout`."""
    pending = [s for s in services if s.ready_url]  # a bot without an HTTP port has nothing to poll
    with Live(_status(services), console=console, transient=True) as live:
        poll_ready(pending, poll_s=poll_s, timeout=1.0, on_poll=lambda: live.update(_status(services)))


def _status(services: list[Service]) -> Table:
    table = Table("service", "phase", "elapsed", box=None, title="starting june", title_justify="left")
    now = time.monotonic()
    for s in services:
        elapsed = s.ready_after if s.ready_after is not None else now - s.started
        style = "green" if s.ready_after is not None else _COLORS.get(s.name, "white")
        table.add_row(f"[{style}]{s.name}[/]", s.phase, f"{elapsed:5.0f} s")
    return table


def _banner(seconds: float, url: str, api_key: str | None) -> None:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx.Client(timeout=10) as http:
            model = served_model(http, url, headers=headers)
    except (httpx.HTTPError, ValueError):  # NoServedModel, or a body that is not JSON
        model = "MODEL"
    auth = f" -H 'Authorization: Bearer {api_key}'" if api_key else ""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Say hello in five words."}]})
    console.print(
        f"\n[bold green]june is up[/] in {seconds:.0f} s: OpenAI base URL [bold]{url}/v1[/] (Ctrl-C stops it)\n",
        markup=True,
    )
    console.print(
        f"  curl -s {url}/v1/chat/completions{auth} -H 'Content-Type: application/json' -d '{body}'\n"
        "  uv run june voice question.ogg -o answer.ogg\n",
        markup=False,
        soft_wrap=True,
    )
