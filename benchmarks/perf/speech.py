"""`june bench speech`: the speech service's speed and accuracy on this machine.

Starts `python -m speech` on a free local port (or uses `--url`) with tiny.en and base preloaded and
a queue deep enough for the throughput runs, then measures over HTTP, as clients see it:

- STT real-time factor per Whisper model (wall time / audio seconds; < 1 is faster than real time)
  on a ~10 s Kokoro-spoken paragraph, median of `--repeats`;
- TTS real-time factor for a two-sentence reply, and the time to the first audio byte: streamed
  (june sends each sentence as it is ready) vs whole (the whole reply synthesized first, i.e. what a
  non-streaming server gives: the request's total time);
- throughput (requests/s, p50 latency) of mixed STT (tiny.en) + TTS requests at concurrency 1/4/16;
- TTS → STT round-trip WER (benchmarks.perf.wer: jiwer on words, lower-cased, punctuation dropped) over `PHRASES`,
  Whisper base with language="en" (the offline Kokoro voices are Japanese speaking English);
- a burst: `--burst` identical transcriptions (base, a two-sentence clip) sent at once, against one alone:
  when the first, the median and the last finish. Requests hold a model slot from their first to
  their last segment and wait in arrival order, so the first should finish in about its solo time
  (target ≤ 1.5×) rather than all finishing together at the end. `--burst-only` measures just this;
- the speech engines side by side (`--engines piper,kokoro`; `--engines ""` skips it): each engine in
  a service of its own (no Whisper loaded in it), one after the other, measured alone: TTS speed
  (audio seconds per wall second, whole two-sentence reply), first streamed audio byte, the service's
  RSS after the runs, and for every installed voice (`--voices default` for the default only) the
  reply-audio WER of `REPLIES` (`--replies` of them) transcribed by Whisper base *without* a
  `language`, so Whisper detects it as a listener's app would, and the share of clips detected as
  English.

Prints a rich table and writes a PNG (matplotlib) to `--out`. Numbers move with machine load.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

from benchmarks.perf.plot_option import PlotOut
from benchmarks.perf.wer import wer
from core.procs import free_port, running

PARAGRAPH = (
    "The meeting starts at nine tomorrow morning in the small room on the second floor. "
    "Please bring the quarterly report and a laptop with the latest slides. "
    "We will talk about the budget first and then plan the summer release."
)
TWO_SENTENCES = "Sure, I can help with that. The kitchen lights are on now and the oven is preheating."
PHRASES = [
    "Turn on the lights in the living room.",
    "What is the weather like tomorrow?",
    "Set a timer for ten minutes.",
    "Play some relaxing music, please.",
    "Remind me to call my mother at six.",
    "How far is the nearest train station?",
    "Add milk and eggs to the shopping list.",
    "The quick brown fox jumps over the lazy dog.",
    "Please open the garage door.",
    "I would like a cup of green tea.",
]
REPLIES = [
    "The capital of Germany is Berlin, and about 3.7 million people live there.",
    "Sure, I set a timer for 10 minutes. I'll let you know when it's done.",
    "Your flight to Chicago leaves at 7:45 tomorrow morning from gate B12.",
    "Here are three ideas: a picnic in the park, a museum visit, or a movie night at home.",
    "Water boils at 100 degrees Celsius at sea level.",
    "Marie Curie won two Nobel Prizes, one in physics and one in chemistry.",
    "The NASA rover landed on Mars in February 2021.",
    "You have two meetings today: one with Sarah at noon and one with the design team at 3 p.m.",
    "To reset your password, open Settings, choose Account, and tap Reset Password.",
    "The Pacific is the largest ocean on Earth.",
    "A healthy adult needs about seven to nine hours of sleep each night.",
    "I added milk, eggs, and bread to your shopping list.",
    "The train to Boston is running about 15 minutes late.",
    "Python is a programming language that is popular for data science and automation.",
    "It will be sunny tomorrow with a high of 24 degrees and a light breeze.",
    "Shakespeare wrote Romeo and Juliet in the late 16th century.",
    "The speed of light is about 300,000 kilometers per second.",
    "Your package from Amazon should arrive on Thursday afternoon.",
    "I can't find a restaurant open after midnight nearby, but there is a diner on Main Street.",
    "Photosynthesis turns sunlight, water, and carbon dioxide into sugar and oxygen.",
    "The Eiffel Tower is about 330 meters tall and was finished in 1889.",
    "Mount Everest is the highest mountain in the world.",
    "Remember to take your medicine with food, twice a day.",
    "The USB drive you asked about holds 64 gigabytes.",
    "Dr. Smith's office is open Monday through Friday from 9 to 5.",
    "The Great Wall of China is thousands of kilometers long.",
    "Okay, I turned off the lights in the kitchen and the living room.",
    "A leap year has 366 days instead of 365.",
    "The World Health Organization was founded in 1948.",
    "Let me know if you want me to read the next chapter of the book.",
]
"""Varied assistant replies (numbers, names, abbreviations, lists) for the engines' reply-audio WER."""
STT_MODELS = ("tiny.en", "base")
CONCURRENCY = (1, 4, 16)


@dataclass
class Results:
    stt_rtf: dict[str, float] = field(default_factory=dict)
    tts_rtf: float = 0.0
    ttfb_streamed: float = 0.0
    ttfb_whole: float = 0.0
    throughput: dict[int, tuple[float, float, int]] = field(default_factory=dict)  # rps, p50 s, 503s
    wer: list[float] = field(default_factory=list)
    burst: tuple[float, list[float], int] | None = None  # solo s, finish times s (sorted), 503s
    engines: list[EngineRow] = field(default_factory=list)


@dataclass
class EngineRow:
    """One engine · voice measured alone: speed, latency and memory (the engine's default voice only)
    and what Whisper hears of its replies without being told the language."""

    engine: str
    voice: str
    speed: float | None = None  # audio s per wall s, whole two-sentence reply (×real time)
    cpu_speed: float | None = None  # audio s per CPU s of the service: what a quiet box gives with one thread
    first_byte_s: float | None = None  # streamed, two-sentence reply
    rss_mib: float | None = None  # the service (engine, no Whisper) after the runs
    wers: list[float] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)  # Whisper's detected language per clip


@contextlib.contextmanager
def _service(url: str | None) -> Iterator[str]:
    if url:
        yield url.rstrip("/")
        return
    port = free_port()
    env = {
        "JUNE_SPEECH_HOST": "127.0.0.1",
        "JUNE_SPEECH_PORT": str(port),
        "JUNE_SPEECH_WHISPER_MODELS": '["tiny.en", "base"]',
        "JUNE_SPEECH_PRELOAD": '["tiny.en", "base"]',
        "JUNE_SPEECH_MAX_QUEUE": "64",
    }
    with running(
        [sys.executable, "-m", "speech"],
        ready_url=f"http://127.0.0.1:{port}/ready",
        env=env,
        timeout=300,
        name="speech",
    ):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def _engine_service(engine: str) -> Iterator[str]:
    """A speech service that speaks with `engine` and loads no Whisper model."""
    port = free_port()
    env = {
        "JUNE_SPEECH_HOST": "127.0.0.1",
        "JUNE_SPEECH_PORT": str(port),
        "JUNE_SPEECH_TTS_ENGINE": engine,
        "JUNE_SPEECH_PRELOAD": "[]",
    }
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "speech"]
    with running(command, ready_url=f"{url}/ready", env=env, timeout=300, name=f"speech-{engine}"):
        yield url


def _process_metric(http: httpx.Client, name: str) -> float:
    """A prometheus-client process metric of the service (`process_resident_memory_bytes`, …)."""
    m = re.search(rf"^{name} ([0-9.e+]+)$", http.get("/metrics").text, re.M)
    return float(m.group(1)) if m else float("nan")


def _tts_timing(http: httpx.Client, repeats: int, voice: str | None = None) -> tuple[float, float, float, float]:
    """Medians of (first streamed byte s, whole reply s, audio s / wall s) for TWO_SENTENCES as pcm, and
    audio s / the service's CPU s over all repeats (independent of other load on the box)."""
    firsts, totals, speeds = [], [], []
    cpu_before, audio_s = _process_metric(http, "process_cpu_seconds_total"), 0.0
    body = {"input": TWO_SENTENCES, "response_format": "pcm", **({"voice": voice} if voice else {})}
    for _ in range(repeats):
        start = time.perf_counter()
        first = None
        pcm = bytearray()
        with http.stream("POST", "/v1/audio/speech", json=body) as r:
            r.raise_for_status()
            for chunk in r.iter_raw():
                if first is None and chunk:
                    first = time.perf_counter() - start
                pcm += chunk
        total = time.perf_counter() - start
        firsts.append(first or total)
        totals.append(total)
        speeds.append(len(pcm) / 2 / 24000 / total)
        audio_s += len(pcm) / 2 / 24000
    cpu_speed = audio_s / (_process_metric(http, "process_cpu_seconds_total") - cpu_before)
    return statistics.median(firsts), statistics.median(totals), statistics.median(speeds), cpu_speed


def _compare_engines(
    stt: httpx.Client, engines: list[str], voices: str, replies: int, repeats: int, console: Console
) -> list[EngineRow]:
    """Each engine alone in its own service; replies transcribed by `stt` (Whisper base, no language)."""
    rows: list[EngineRow] = []
    for engine in engines:
        with _engine_service(engine) as url, httpx.Client(base_url=url, timeout=600) as http:
            listed = http.get("/v1/audio/voices").json()
            default = listed["default"]
            names = [default]
            if voices == "all":
                names += [v["id"] for v in listed["data"] if v["id"] != default]
            _speak(http, TWO_SENTENCES)  # warm-up
            for name in names:
                row = EngineRow(engine, name)
                if name == default:
                    row.first_byte_s, _, row.speed, row.cpu_speed = _tts_timing(http, repeats, name)
                for reply in REPLIES[:replies]:
                    r = http.post("/v1/audio/speech", json={"input": reply, "voice": name, "response_format": "wav"})
                    r.raise_for_status()
                    heard = _transcribe(stt, r.content, "base", language=None)
                    row.wers.append(wer(reply, heard["text"]))
                    row.languages.append(heard["language"])
                if name == default:
                    row.rss_mib = _process_metric(http, "process_resident_memory_bytes") / 2**20
                english = sum(lang == "en" for lang in row.languages)
                timing = ""
                if row.speed is not None:
                    timing = (
                        f", {row.speed:.1f}× real time ({row.cpu_speed:.1f}× per CPU s),"
                        f" first byte {row.first_byte_s:.2f} s, RSS {row.rss_mib:.0f} MiB"
                    )
                console.print(
                    f"  {engine} · {name}: WER {statistics.mean(row.wers):.3f}, English {english}/{len(row.languages)}"
                    + timing
                )
                rows.append(row)
    return rows


def _engine_table(rows: list[EngineRow]) -> Table:
    table = Table(title="speech engines, each alone (WER: Whisper base, language detected, not given)")
    columns = (
        "engine · voice", "TTS ×real time", "per CPU s", "first byte (s)", "RSS (MiB)", "WER", "heard as English",
        "other",
    )  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("engine · voice", "other") else "right")
    for row in rows:
        english = sum(lang == "en" for lang in row.languages)
        others = sorted({lang for lang in row.languages if lang != "en"})
        table.add_row(
            f"{row.engine} · {row.voice}",
            f"{row.speed:.1f}×" if row.speed else "",
            f"{row.cpu_speed:.1f}×" if row.cpu_speed else "",
            f"{row.first_byte_s:.2f}" if row.first_byte_s is not None else "",
            f"{row.rss_mib:.0f}" if row.rss_mib is not None else "",
            f"{statistics.mean(row.wers):.3f}" if row.wers else "",
            f"{english}/{len(row.languages)}",
            ", ".join(f"{lang} ×{row.languages.count(lang)}" for lang in others),
        )
    return table


def _speak(http: httpx.Client, text: str, fmt: str = "wav") -> bytes:
    r = http.post("/v1/audio/speech", json={"input": text, "voice": "alloy", "response_format": fmt})
    r.raise_for_status()
    return r.content


def _transcribe(http: httpx.Client, data: bytes, model: str, language: str | None = "en") -> dict:
    """Whisper's json for `data`; `language` None lets Whisper detect it (verbose_json, to learn which)."""
    fields = {"model": model, "language": language} if language else {"model": model, "response_format": "verbose_json"}
    r = http.post("/v1/audio/transcriptions", files={"file": ("a.wav", data)}, data=fields)
    r.raise_for_status()
    return r.json()


def _measure_sequential(http: httpx.Client, repeats: int, res: Results) -> None:
    paragraph = _speak(http, PARAGRAPH)
    for model in STT_MODELS:
        _transcribe(http, paragraph, model)  # warm-up
        rtfs = []
        for _ in range(repeats):
            start = time.perf_counter()
            body = _transcribe(http, paragraph, model)
            rtfs.append((time.perf_counter() - start) / body["duration"])
        res.stt_rtf[model] = statistics.median(rtfs)
    res.ttfb_streamed, res.ttfb_whole, speed, _ = _tts_timing(http, repeats)
    res.tts_rtf = 1 / speed
    for phrase in PHRASES:
        res.wer.append(wer(phrase, _transcribe(http, _speak(http, phrase), "base")["text"]))


async def _throughput(url: str, concurrency: int, clip: bytes) -> tuple[float, float, int]:
    n = max(4, 2 * concurrency)
    latencies: list[float] = []
    busy = 0
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=httpx.Limits(max_connections=concurrency)) as http:

        async def one(i: int) -> None:
            nonlocal busy
            async with sem:
                start = time.perf_counter()
                if i % 2:
                    files, data = {"file": ("a.wav", clip)}, {"model": "tiny.en"}
                    r = await http.post("/v1/audio/transcriptions", files=files, data=data)
                else:
                    r = await http.post(
                        "/v1/audio/speech", json={"input": "Yes, right away.", "response_format": "opus"}
                    )
                if r.status_code == 503:
                    busy += 1
                else:
                    r.raise_for_status()
                    latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - start
    return len(latencies) / wall, statistics.median(latencies) if latencies else float("nan"), busy


async def _burst(url: str, n: int, clip: bytes) -> tuple[list[float], int]:
    """Finish times (s after the start, sorted) of `n` identical base transcriptions of `clip` sent at
    once (arrival order = index order, 10 ms apart), and the number refused with 503."""
    # No client timeout: the last arrival waits for all the others, however slow the machine is.
    async with httpx.AsyncClient(base_url=url, timeout=None, limits=httpx.Limits(max_connections=n)) as http:
        start = time.perf_counter()

        async def one(i: int) -> float | None:
            await asyncio.sleep(0.01 * i)
            files, data = {"file": ("a.wav", clip)}, {"model": "base", "language": "en"}
            r = await http.post("/v1/audio/transcriptions", files=files, data=data)
            if r.status_code == 503:
                return None
            r.raise_for_status()
            return time.perf_counter() - start

        done = await asyncio.gather(*(one(i) for i in range(n)))
    return sorted(t for t in done if t is not None), sum(t is None for t in done)


def _measure_burst(http: httpx.Client, base: str, n: int, res: Results) -> None:
    clip = _speak(http, TWO_SENTENCES)
    _transcribe(http, clip, "base")  # warm-up

    def solo() -> float:
        start = time.perf_counter()
        _transcribe(http, clip, "base")
        return time.perf_counter() - start

    # Alone just before and just after the burst: on a shared machine the load moves, and the
    # median of the two is the fairest "alone" for the burst in between.
    before = [solo(), solo()]
    finishes, busy = asyncio.run(_burst(base, n, clip))
    res.burst = (statistics.median([*before, solo(), solo()]), finishes, busy)


def _burst_rows(table: Table, res: Results, n: int) -> None:
    if res.burst is None:
        return
    solo, finishes, busy = res.burst
    table.add_row("STT base alone (s, median of 2 before + 2 after)", f"{solo:.2f}", "")
    if finishes:
        table.add_row(
            f"burst of {n}: first finish (s, ×alone)", f"{finishes[0]:.2f} ({finishes[0] / solo:.2f}×)", "≤ 1.5×"
        )
        table.add_row(
            f"burst of {n}: median / last finish (s)", f"{statistics.median(finishes):.2f} / {finishes[-1]:.2f}", ""
        )
        # Load-independent: served whole in order, the first ends after 1/n of the burst (0.125 for 8);
        # sharing the CPU, every request ends near the end (→ 1).
        table.add_row(f"burst of {n}: first / last finish", f"{finishes[0] / finishes[-1]:.2f}", f"≈ 1/{n}")
    table.add_row(f"burst of {n}: 503s", str(busy), "")


def _plot(res: Results, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    models = list(res.stt_rtf)
    labels, values = [*models, "tts"], [*(res.stt_rtf[m] for m in models), res.tts_rtf]
    ax[0][0].bar(labels, values, color=["C0"] * len(models) + ["C1"])
    ax[0][0].axhline(1.0, color="grey", ls="--", lw=1)
    ax[0][0].set(title="Real-time factor (lower is faster; 1 = real time)", ylabel="wall s / audio s")
    ax[0][1].bar(["first byte, streamed", "first byte, whole reply"], [res.ttfb_streamed, res.ttfb_whole])
    ax[0][1].axhline(1.0, color="grey", ls="--", lw=1)
    ax[0][1].set(title="TTS, two-sentence reply", ylabel="seconds")
    conc = list(res.throughput)
    ax[1][0].plot(conc, [res.throughput[c][0] for c in conc], "o-")
    ax[1][0].set(title="Throughput, mixed STT (tiny.en) + TTS", xlabel="concurrency", ylabel="requests/s")
    ax[1][0].set_xscale("log")
    ax[1][0].set_xticks(conc, [str(c) for c in conc])
    ax[1][0].set_ylim(bottom=0)  # from zero, so a flat line looks flat
    ax[1][1].barh(range(len(res.wer)), res.wer)
    ax[1][1].set(title=f"TTS → STT WER (mean {statistics.mean(res.wer):.3f})", xlabel="WER")
    ax[1][1].set_yticks(range(len(PHRASES)), [p[:28] for p in PHRASES])
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def speech(
    out: PlotOut = Path("speech-bench.png"),
    url: Annotated[str | None, typer.Option(help="A running speech service; default: start one locally.")] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Timed runs per measurement (median reported).")] = 3,
    burst: Annotated[int, typer.Option(min=1, help="Identical transcriptions sent at once in the burst test.")] = 8,
    burst_only: Annotated[bool, typer.Option(help="Measure only the burst (solo time vs first/last finish).")] = False,
    engines: Annotated[str, typer.Option(help="Speech engines to compare side by side, comma-separated; '' skips.")] = (
        "piper,kokoro"
    ),
    voices: Annotated[str, typer.Option(help="Voices per engine compared: 'all' installed or 'default'.")] = "all",
    replies: Annotated[int, typer.Option(min=1, max=len(REPLIES), help="Replies per voice for the WER.")] = 30,
    engines_only: Annotated[bool, typer.Option(help="Measure only the engine comparison.")] = False,
) -> None:
    """STT/TTS real-time factors, time to first audio byte, throughput at 1/4/16, round-trip WER, a
    burst, and the speech engines side by side."""
    if voices not in ("all", "default"):
        raise typer.BadParameter("--voices is 'all' or 'default'")
    chosen = [e.strip() for e in engines.split(",") if e.strip()]
    res = Results()
    console = Console()
    with _service(url) as base, httpx.Client(base_url=base, timeout=600) as http:
        console.print(f"speech service at {base}; measuring (repeats={repeats}) …")
        if chosen:
            res.engines = _compare_engines(http, chosen, voices, replies, repeats, console)
            console.print(_engine_table(res.engines))
            if engines_only:
                return
        _measure_burst(http, base, burst, res)
        if burst_only:
            table = Table(title=f"june speech burst on this machine ({os.cpu_count()} CPUs)")
            for column in ("measure", "value", "target"):
                table.add_column(column, justify="left" if column == "measure" else "right")
            _burst_rows(table, res, burst)
            console.print(table)
            return
        _measure_sequential(http, repeats, res)
        clip = _speak(http, "Turn off the radio in the kitchen.")
        for c in CONCURRENCY:
            res.throughput[c] = asyncio.run(_throughput(base, c, clip))
    table = Table(title=f"june speech on this machine ({os.cpu_count()} CPUs)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    for model, rtf in res.stt_rtf.items():
        target = "≥ 10× (tiny.en)" if model == "tiny.en" else ""
        table.add_row(f"STT {model} RTF (×real time)", f"{rtf:.3f} ({1 / rtf:.1f}×)", target)
    table.add_row("TTS RTF (×real time)", f"{res.tts_rtf:.3f} ({1 / res.tts_rtf:.1f}×)", "≥ 8×")
    table.add_row("TTS first byte, streamed (s)", f"{res.ttfb_streamed:.2f}", "≤ 0.3 s")
    table.add_row("TTS first byte, whole reply (s)", f"{res.ttfb_whole:.2f}", "")
    for c, (rps, p50, busy) in res.throughput.items():
        table.add_row(f"throughput @ {c} (req/s, p50 s, 503s)", f"{rps:.2f}, {p50:.2f}, {busy}", "")
    _burst_rows(table, res, burst)
    passed = sum(w <= 0.2 for w in res.wer)
    table.add_row("round-trip WER mean (pass ≤ 0.2)", f"{statistics.mean(res.wer):.3f} ({passed}/{len(res.wer)})", "")
    console.print(table)
    _plot(res, out)
    console.print(f"plot written to {out}")
