"""`june bench realtime`: spoken turns replayed into /v1/realtime at real-time pace, latency per turn.

The helpers at the top (clip → pcm16 24 kHz, paced streaming, pcm → WAV) are shared with the tests.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from benchmarks.perf.endpoints import gateway_url

RATE = 24000


def clip_pcm(path: Path, *, lead_s: float = 0.3, tail_s: float = 1.0) -> bytes:
    """The clip at `path` as pcm16 mono 24 kHz, with `lead_s` of silence before and `tail_s` after
    (the tail lets server VAD see the end of speech)."""
    import numpy as np

    from core.audio import decode, encode  # PyAV: loaded when used, not with the CLI

    samples = decode(path.read_bytes(), RATE)
    padded = np.concatenate([np.zeros(int(lead_s * RATE)), samples, np.zeros(int(tail_s * RATE))])
    return encode(padded, RATE, "pcm")


async def stream_pcm(
    pcm: bytes, append: Callable[[str], Awaitable[None]], *, chunk_ms: int = 40, pace: float = 1.0
) -> None:
    """Send `pcm` through `append(base64)` in `chunk_ms` pieces at `pace` × real time (0: as fast as possible)."""
    step = chunk_ms * RATE * 2 // 1000
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n, i in enumerate(range(0, len(pcm), step)):
        await append(base64.b64encode(pcm[i : i + step]).decode())
        if pace:
            await asyncio.sleep(max(0.0, start + (n + 1) * chunk_ms / 1000 / pace - loop.time()))


def pcm_wav(pcm: bytes) -> bytes:
    """pcm16 mono 24 kHz as WAV bytes (to transcribe what june said)."""
    from core.audio import encode, from_pcm16

    return encode(from_pcm16(pcm), RATE, "wav")


# --- the benchmark ---------------------------------------------------------------------------------


PROMPTS = [
    "What is the capital of Germany?",
    "How far away is the moon?",
    "Give me a tip for sleeping better.",
    "What should I cook for dinner tonight?",
    "Why is the sky blue?",
    "Tell me a fun fact about cats.",
    "How do I boil an egg?",
    "What is a good name for a dog?",
    "How many legs does a spider have?",
    "What is the tallest mountain in the world?",
]
INTERRUPTION = "Wait, tell me something else."
LONG_REQUEST = "Tell me a long story about a dragon, at least ten sentences."
INSTRUCTIONS = "You are June, a voice assistant. Answer in one or two short spoken sentences."


@dataclass
class Turn:
    """Seconds from the end of the user's speech (last speech sample sent) to each event of the turn."""

    speech_stopped: float
    transcribed: float
    first_text: float
    first_audio: float
    transcript_done: float
    transcript: str
    stalled: float
    """Seconds a client playing the reply from its first audio delta would have waited for audio (underruns)."""


@dataclass
class BargeIn:
    """Seconds from the first sample of the interrupting speech to the server noticing it and to the reply's end."""

    speech_started: float
    cancelled: float | None = None
    """None when the reply ended before the user spoke: nothing to stop."""
    audio_after_done: int = 0


@dataclass
class Run:
    turns: list[Turn] = field(default_factory=list)
    barge_ins: list[BargeIn] = field(default_factory=list)


class _Events:
    """Every server event of a connection with its arrival time (perf_counter), read in a task."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.log: list[tuple[float, Any]] = []
        self._new = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for ev in self.conn:
            self.log.append((time.perf_counter(), ev))
            self._new.set()

    async def wait_for(self, predicate: Any, start: int, timeout: float) -> tuple[int, float, Any]:
        """The first (index, time, event) at or after `start` for which `predicate(event)` holds."""
        async with asyncio.timeout(timeout):
            i = start
            while True:
                while i < len(self.log):
                    t, ev = self.log[i]
                    if predicate(ev):
                        return i, t, ev
                    i += 1
                if self.task.done():
                    raise RuntimeError("the connection closed")
                self._new.clear()
                await self._new.wait()


async def _speak_clip(http: httpx.AsyncClient, text: str) -> bytes:
    """`text` spoken by june's own TTS as pcm16 24 kHz (the user's voice in this benchmark)."""
    response = await http.post(
        "/v1/audio/speech", json={"model": "tts-1", "input": text, "voice": "echo", "response_format": "pcm"}
    )
    response.raise_for_status()
    return response.content


async def _measure(
    gateway: str, n_turns: int, n_barge: int, api_key: str | None, timeout: float, stt_model: str | None
) -> Run:
    from openai import AsyncOpenAI

    silence = bytes(int(RATE * 2 * 1.0))  # 1 s after each turn: server VAD needs to hear the pause
    run = Run()
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(base_url=gateway, headers=headers, timeout=timeout) as http:
        clips = {text: await _speak_clip(http, text) for text in [*PROMPTS, INTERRUPTION]}
    client = AsyncOpenAI(base_url=f"{gateway}/v1", api_key=api_key or "unused", max_retries=0)
    async with client.realtime.connect(model="june") as conn:
        events = _Events(conn)
        await conn.session.update(session={"type": "realtime", "instructions": INSTRUCTIONS, "audio": {"input": {
            "transcription": {"language": "en", **({"model": stt_model} if stt_model else {})},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500, "prefix_padding_ms": 300},
        }}})  # fmt: skip
        append = conn.input_audio_buffer.append
        for n in range(n_turns):
            text = PROMPTS[n % len(PROMPTS)]
            mark = len(events.log)
            await stream_pcm(clips[text], lambda b64: append(audio=b64))
            end = time.perf_counter()
            await stream_pcm(silence, lambda b64: append(audio=b64))
            i, t, _ = await events.wait_for(lambda ev: ev.type == "input_audio_buffer.speech_stopped", mark, timeout)
            speech_stopped = t - end
            i, t, _ = await events.wait_for(
                lambda ev: ev.type == "conversation.item.input_audio_transcription.completed", mark, timeout
            )
            transcribed = t - end
            i, t, created = await events.wait_for(lambda ev: ev.type == "response.created", mark, timeout)
            rid = created.response.id
            i, t, _ = await events.wait_for(
                lambda ev, rid=rid: ev.type == "response.output_audio_transcript.delta" and ev.response_id == rid,
                i,
                timeout,
            )
            first_text = t - end
            i, t, _ = await events.wait_for(
                lambda ev, rid=rid: ev.type == "response.output_audio.delta" and ev.response_id == rid, i, timeout
            )
            first_audio = t - end
            i, t, done = await events.wait_for(
                lambda ev, rid=rid: ev.type == "response.output_audio_transcript.done" and ev.response_id == rid,
                i,
                timeout,
            )
            transcript_done = t - end
            await events.wait_for(lambda ev, rid=rid: ev.type == "response.done" and ev.response.id == rid, i, timeout)
            stalled = playback_stalls(events.log[mark:], rid)
            turn = Turn(speech_stopped, transcribed, first_text, first_audio, transcript_done, done.transcript, stalled)
            run.turns.append(turn)
            console.print(
                f"turn {n + 1}: first audio {turn.first_audio:.2f} s, stalls {turn.stalled:.2f} s"
                f" — {turn.transcript[:60]!r}"
            )
        if n_barge:
            story = "You are June. Asked for a story, tell a long one."
            await conn.session.update(session={"type": "realtime", "instructions": story, "max_output_tokens": 400})
        for n in range(n_barge):
            # A long typed request, talked over as soon as its first audio arrives.
            mark = len(events.log)
            await conn.conversation.item.create(item={"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": LONG_REQUEST}]})  # fmt: skip
            await conn.response.create()
            i, _, created = await events.wait_for(lambda ev: ev.type == "response.created", mark, timeout)
            rid = created.response.id
            await events.wait_for(
                lambda ev, rid=rid: ev.type == "response.output_audio.delta" and ev.response_id == rid, i, timeout
            )
            barge = await _barge_in(events, append, clips[INTERRUPTION], rid, timeout)
            run.barge_ins.append(barge)
            await stream_pcm(silence, lambda b64: append(audio=b64))
            await events.wait_for(
                lambda ev, rid=rid: ev.type == "response.done" and ev.response.id != rid, mark, timeout
            )
            console.print(
                f"barge-in {n + 1}: stopped after {barge.cancelled:.2f} s"
                if barge.cancelled is not None
                else f"barge-in {n + 1}: the reply had ended"
            )
        events.task.cancel()
    return run


def playback_stalls(log: list[tuple[float, Any]], response_id: str) -> float:
    """Seconds of silence a client would hear after the first audio of `response_id` if it played each
    `response.output_audio.delta` (pcm16 24 kHz) as it arrived: the sum of the gaps where the next
    delta came after everything before it had been played. `log`: (arrival time, event) pairs."""
    clock: float | None = None  # when what has arrived so far ends playing
    stalled = 0.0
    for t, ev in log:
        if ev.type != "response.output_audio.delta" or ev.response_id != response_id:
            continue
        if clock is not None and t > clock:
            stalled += t - clock
        clock = max(clock or t, t) + len(base64.b64decode(ev.delta)) / 2 / RATE
    return stalled


async def _barge_in(events: _Events, append: Any, clip: bytes, rid: str, timeout: float) -> BargeIn:
    """Talk over reply `rid` while it plays; time until the server stops it."""
    mark = len(events.log)
    sender = asyncio.create_task(stream_pcm(clip, lambda b64: append(audio=b64)))
    # The first speech sample: the clip's leading quiet is skipped by finding its first loud sample.
    import numpy as np

    samples = np.frombuffer(clip, dtype="<i2")
    loud = int(np.argmax(np.abs(samples) > 1000))
    start = time.perf_counter() + loud / RATE
    i, t, _ = await events.wait_for(lambda ev: ev.type == "input_audio_buffer.speech_started", mark, timeout)
    barge = BargeIn(speech_started=t - start)
    i, t, done = await events.wait_for(lambda ev: ev.type == "response.done" and ev.response.id == rid, 0, timeout)
    if done.response.status == "cancelled":  # else the reply ended before the user spoke: nothing to stop
        barge.cancelled = max(0.0, t - start)
    await sender
    barge.audio_after_done = sum(
        1 for _, ev in events.log[i:] if ev.type == "response.output_audio.delta" and ev.response_id == rid
    )
    return barge


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _plot(run: Run, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    turns = run.turns
    parts = {
        "VAD tail (end of speech → speech_stopped)": [t.speech_stopped for t in turns],
        "STT (→ transcript)": [t.transcribed - t.speech_stopped for t in turns],
        "LLM first sentence": [t.first_text - t.transcribed for t in turns],
        "TTS first chunk": [t.first_audio - t.first_text for t in turns],
    }
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    bottom = [0.0] * len(turns)
    for label, values in parts.items():
        ax[0].bar(range(1, len(turns) + 1), values, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax[0].axhline(2.0, color="grey", ls="--", lw=1, label="goal p50 2.0 s")
    ax[0].set(title="End of user speech → first reply audio, per turn", xlabel="turn", ylabel="seconds")
    ax[0].legend(fontsize=8)
    stops = [b.cancelled for b in run.barge_ins if b.cancelled is not None]
    ax[1].boxplot([stops or [0.0]], tick_labels=["barge-in → reply stopped"])
    ax[1].axhline(0.3 + 0.0, color="grey", ls="--", lw=1)
    ax[1].set(title="Barge-in", ylabel="seconds")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


console = Console()


def realtime(
    gateway: Annotated[
        str | None,
        typer.Option(
            help="Gateway base URL (OpenAI paths under /v1) [default: the one `june up` serves, JUNE_GATEWAY_HOST/PORT: http://127.0.0.1:8000]."
        ),
    ] = None,
    turns: Annotated[int, typer.Option(min=1, help="Spoken turns answered in full.")] = 20,
    barge_ins: Annotated[int, typer.Option(min=0, help="Extra turns interrupted while the reply plays.")] = 5,
    api_key: Annotated[
        str | None, typer.Option(envvar="OPENAI_API_KEY", help="Key, when the gateway has keys.")
    ] = None,
    stt_model: Annotated[
        str | None,
        typer.Option(help="Transcription model for the turns (a speech service model id; default: the gateway's)."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each event.")] = 300.0,
    out: Annotated[Path, typer.Option(dir_okay=False, help="Where to write the PNG plot.")] = Path(
        "realtime-bench.png"
    ),
) -> None:
    """Live voice latency: end of speech → first reply audio / → transcript done, barge-in → stop (p50/p95)."""
    gateway = gateway or gateway_url()
    run = asyncio.run(_measure(gateway, turns, barge_ins, api_key, timeout, stt_model))
    full = every = run.turns
    rows: list[tuple[str, list[float], str]] = [
        ("end of speech → first reply audio", [t.first_audio for t in every], "p50 ≤ 2.0"),
        ("end of speech → reply transcript done", [t.transcript_done for t in full], ""),
        ("  VAD tail (→ speech_stopped)", [t.speech_stopped for t in every], ""),
        ("  STT (speech_stopped → transcript)", [t.transcribed - t.speech_stopped for t in every], ""),
        ("  LLM first sentence (transcript → first text)", [t.first_text - t.transcribed for t in every], ""),
        ("  TTS first chunk (first text → first audio)", [t.first_audio - t.first_text for t in every], ""),
        ("playback stalls after the first audio, per turn", [t.stalled for t in every], ""),
        ("barge-in → speech_started (client stops playback)", [b.speech_started for b in run.barge_ins], "≤ 0.3"),
        (
            "barge-in → reply cancelled (response.done)",
            [b.cancelled for b in run.barge_ins if b.cancelled is not None],
            "",
        ),
    ]
    table = Table(
        title=f"/v1/realtime via {gateway}: {len(every)} turns, {len(run.barge_ins)} barge-ins, "
        f"STT {stt_model or 'gateway default'}"
    )
    for column in ("seconds", "p50", "p95", "n", "goal"):
        table.add_column(column, justify="left" if column == "seconds" else "right")
    for label, values, goal in rows:
        if values:
            table.add_row(label, f"{_pct(values, 0.5):.2f}", f"{_pct(values, 0.95):.2f}", str(len(values)), goal)
    console.print(table)
    leaked = sum(b.audio_after_done for b in run.barge_ins)
    console.print(f"audio deltas of a cancelled reply after its response.done: {leaked}")
    _plot(run, out)
    console.print(f"plot written to {out}")
