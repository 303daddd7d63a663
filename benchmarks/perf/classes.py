"""`june bench classes`: what each of the speech service's request-class mechanisms buys a live turn.

For each configuration below, starts `python -m speech` (CPU defaults, one normal slot on a 2-core
box) with the mechanisms it names, then times live work as a /v1/realtime turn sends it — a
tiny.en transcription of a ~2 s clip and a one-sentence speech request (whole response) — first on
an idle service, then while a fixed background load runs: one client looping batch transcriptions
(Whisper base) of a ~20 s clip and one looping batch speech requests (four sentences). The clips are
spoken by the service's own voice. The configurations, one after the other in one run:

- `off`: no X-June-Class header (every request is interactive, first come first served), no live
  slot, no lower priority: what the service did before request classes;
- `order`: classes sent: live first in the queue, and a running batch request gives its slot up
  between Whisper segments and sentences (`JUNE_SPEECH_LIVE_SLOTS=0`, `BACKGROUND_NICE=0`);
- `slot`: + one slot reserved for live work (`LIVE_SLOTS=1`), no lower priority;
- `all`: + non-live work at nice 10, its model calls in the background worker process
  (`BACKGROUND_NICE=10`): the defaults of a speech service without a live window file.

Prints one row per configuration: live STT and TTS p50 / max idle and busy (seconds), busy p50 /
idle p50, the live transcripts' WER busy (jiwer), the background requests completed per minute, and
the 1-minute load average (`os.getloadavg`) at the end of the idle and of the busy phase; numbers
move with the box's other load, so compare rows of one run.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated

import httpx
import jiwer
import typer
from rich.console import Console
from rich.table import Table

from core.procs import free_port, running

LIVE_PHRASE = "What is the weather like tomorrow?"
LIVE_REPLY = "It will be sunny and warm tomorrow."
BATCH_TEXT = (
    "The meeting starts at nine tomorrow morning in the small room on the second floor. "
    "Please bring the quarterly report and a laptop with the latest slides. "
    "We will talk about the budget first and then plan the summer release. "
    "After lunch the design team shows the new garden app on a phone."
)
BATCH_SPEECH = (
    "Here is the summary you asked for. The budget grew by four percent this year. "
    "Most of it went to the new office. The rest is saved for the summer release."
)

CONFIGS: dict[str, tuple[bool, dict[str, str]]] = {
    "off": (False, {"JUNE_SPEECH_LIVE_SLOTS": "0", "JUNE_SPEECH_BACKGROUND_NICE": "0"}),
    "order": (True, {"JUNE_SPEECH_LIVE_SLOTS": "0", "JUNE_SPEECH_BACKGROUND_NICE": "0"}),
    "slot": (True, {"JUNE_SPEECH_LIVE_SLOTS": "1", "JUNE_SPEECH_BACKGROUND_NICE": "0"}),
    "all": (True, {"JUNE_SPEECH_LIVE_SLOTS": "1", "JUNE_SPEECH_BACKGROUND_NICE": "10"}),
}
"""Name → (send X-June-Class, the service's environment)."""


@dataclass
class Row:
    """One configuration's figures (seconds)."""

    name: str
    stt_idle: list[float] = field(default_factory=list)
    tts_idle: list[float] = field(default_factory=list)
    stt_busy: list[float] = field(default_factory=list)
    tts_busy: list[float] = field(default_factory=list)
    heard_busy: list[str] = field(default_factory=list)
    background_done: int = 0
    busy_s: float = 0.0
    load_idle: float = 0.0
    load: float = 0.0


@contextlib.contextmanager
def _service(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    base = {
        "JUNE_SPEECH_HOST": "127.0.0.1",
        "JUNE_SPEECH_PORT": str(port),
        "JUNE_SPEECH_PRELOAD": '["tiny.en", "base"]',
    }
    with running(
        [sys.executable, "-m", "speech"], ready_url=f"{url}/ready", env=base | env, timeout=300, name="speech"
    ):
        yield url


def _wav(http: httpx.Client, text: str) -> bytes:
    r = http.post(
        "/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": text, "response_format": "wav"}
    )
    r.raise_for_status()
    return r.content


def _headers(classes: bool, cls: str) -> dict[str, str]:
    return {"X-June-Class": cls} if classes else {}


def _live_stt(http: httpx.Client, clip: bytes, classes: bool) -> tuple[float, str]:
    start = time.perf_counter()
    r = http.post(
        "/v1/audio/transcriptions",
        files={"file": ("turn.wav", clip)},
        data={"model": "tiny.en", "language": "en"},
        headers=_headers(classes, "live"),
    )
    r.raise_for_status()
    return time.perf_counter() - start, r.json()["text"]


def _live_tts(http: httpx.Client, classes: bool) -> float:
    start = time.perf_counter()
    body = {"model": "tts-1", "voice": "alloy", "input": LIVE_REPLY, "response_format": "pcm"}
    r = http.post("/v1/audio/speech", json=body, headers=_headers(classes, "live"))
    r.raise_for_status()
    return time.perf_counter() - start


def _background(url: str, classes: bool, clip: bytes, stop: threading.Event, done: list[int]) -> list[threading.Thread]:
    """Two clients looping batch work until `stop`; `done[0]` counts the requests they completed."""
    lock = threading.Lock()

    def transcribe() -> None:
        with httpx.Client(base_url=url, timeout=600) as http:
            while not stop.is_set():
                files = {"file": ("batch.wav", clip)}
                r = http.post(
                    "/v1/audio/transcriptions", files=files, data={"model": "base"}, headers=_headers(classes, "batch")
                )
                r.raise_for_status()
                with lock:
                    done[0] += 1

    def speak() -> None:
        with httpx.Client(base_url=url, timeout=600) as http:
            body = {"model": "tts-1", "voice": "alloy", "input": BATCH_SPEECH, "response_format": "opus"}
            while not stop.is_set():
                http.post("/v1/audio/speech", json=body, headers=_headers(classes, "batch")).raise_for_status()
                with lock:
                    done[0] += 1

    threads = [threading.Thread(target=transcribe, daemon=True), threading.Thread(target=speak, daemon=True)]
    for t in threads:
        t.start()
    return threads


def measure(name: str, turns: int) -> Row:
    """Run configuration `name` (see CONFIGS): `turns` live STT + TTS requests idle, then busy."""
    classes, env = CONFIGS[name]
    row = Row(name)
    with _service(env) as url, httpx.Client(base_url=url, timeout=600) as http:
        live_clip, batch_clip = _wav(http, LIVE_PHRASE), _wav(http, BATCH_TEXT)
        for warm in range(2):  # load paths and lazily built instances (the background Whisper) first
            _live_stt(http, live_clip, classes)
            _live_tts(http, classes)
            http.post(
                "/v1/audio/transcriptions",
                files={"file": ("b.wav", live_clip)},
                data={"model": "base"},
                headers=_headers(classes, "batch" if warm else "live"),
            ).raise_for_status()
        for _ in range(turns):
            row.stt_idle.append(_live_stt(http, live_clip, classes)[0])
            row.tts_idle.append(_live_tts(http, classes))
        row.load_idle = os.getloadavg()[0]
        stop, done = threading.Event(), [0]
        started = time.perf_counter()
        threads = _background(url, classes, batch_clip, stop, done)
        time.sleep(3)  # both loops are under way
        for i in range(turns):
            seconds, text = _live_stt(http, live_clip, classes)
            row.stt_busy.append(seconds)
            row.heard_busy.append(text)
            row.tts_busy.append(_live_tts(http, classes))
            time.sleep(0.5 + 0.37 * (i % 3))  # land at different points of the background work
        row.load = os.getloadavg()[0]
        stop.set()
        for t in threads:
            t.join(600)
        row.busy_s = time.perf_counter() - started
        row.background_done = done[0]
    return row


def _p50(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _wer(heard: list[str]) -> float:
    norm = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip()])
    refs = [norm(LIVE_PHRASE)] * len(heard)
    return jiwer.wer(refs, [norm(h) for h in heard]) if heard else float("nan")


def classes(
    configs: Annotated[str, typer.Option(help=f"Comma-separated, in order: {', '.join(CONFIGS)}.")] = ",".join(CONFIGS),
    turns: Annotated[int, typer.Option(min=1, help="Live STT + TTS pairs per phase.")] = 6,
) -> None:
    """Live STT / TTS latency idle vs under batch load, with each request-class mechanism on or off."""
    names = [c.strip() for c in configs.split(",") if c.strip()]
    if unknown := [n for n in names if n not in CONFIGS]:
        raise typer.BadParameter(f"unknown configurations {unknown}; known: {', '.join(CONFIGS)}")
    rows = []
    console = Console(width=max(160, Console().width))  # the table's 12 columns, also when piped
    for name in names:
        console.print(f"[bold]{name}[/bold] …")
        rows.append(row := measure(name, turns))
        console.print(
            f"  stt idle {row.stt_idle}  busy {row.stt_busy}\n  tts idle {row.tts_idle}  busy {row.tts_busy}"
            f"\n  heard busy {row.heard_busy}"
        )
    table = Table(title=f"Live work in the speech service, idle vs busy ({turns} turns each; seconds)")
    for col in (
        "config", "STT idle p50", "STT busy p50", "STT busy max", "STT busy/idle", "TTS idle p50", "TTS busy p50",
        "TTS busy max", "TTS busy/idle", "live WER busy", "background /min", "load idle, busy",
    ):  # fmt: skip
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r.name,
            f"{_p50(r.stt_idle):.2f}",
            f"{_p50(r.stt_busy):.2f}",
            f"{max(r.stt_busy):.2f}",
            f"{_p50(r.stt_busy) / _p50(r.stt_idle):.1f}×",
            f"{_p50(r.tts_idle):.2f}",
            f"{_p50(r.tts_busy):.2f}",
            f"{max(r.tts_busy):.2f}",
            f"{_p50(r.tts_busy) / _p50(r.tts_idle):.1f}×",
            f"{_wer(r.heard_busy):.2f}",
            f"{60 * r.background_done / r.busy_s:.1f}",
            f"{r.load_idle:.2f}, {r.load:.2f}",
        )
    console.print(table)
