"""`june bench realtime`: spoken turns replayed into /v1/realtime at real-time pace, latency per turn.

With `--busy`, the same turns on the idle stack and then under the background load of
benchmarks/perf/background.py; results, tables, goals and the plot are benchmarks/perf/realtime_report.py.

The helpers at the top (clip → pcm16 24 kHz, paced streaming, pcm → WAV) are shared with the tests.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from benchmarks.perf.background import Background, BackgroundSpec
from benchmarks.perf.endpoints import gateway_url
from benchmarks.perf.plot_option import PlotOut
from benchmarks.perf.realtime_report import (
    BargeIn,
    Run,
    Turn,
    background_table,
    goals,
    no_nan,
    plot_runs,
    runs_table,
    single_table,
    summary,
)
from benchmarks.perf.wer import wer

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


console = Console()

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


class SessionRefused(RuntimeError):
    """The gateway answered the session with an `error` event instead of `session.created`."""


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


async def _clips(gateway: str, api_key: str | None, timeout: float) -> dict[str, bytes]:
    """Every prompt (and the interruption) spoken once, as pcm16 24 kHz."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(base_url=gateway, headers=headers, timeout=timeout) as http:
        return {text: await _speak_clip(http, text) for text in [*PROMPTS, INTERRUPTION]}


async def _measure(
    gateway: str,
    clips: dict[str, bytes],
    n_turns: int,
    n_barge: int,
    api_key: str | None,
    timeout: float,
    run: Run,
    background: Background | None = None,
) -> Run:
    """One realtime session: `n_turns` spoken turns then `n_barge` barge-ins, into `run`. With
    `background`, it is started once the session is set up, just before the first turn, and its chat
    loops are stopped when the last turn has ended (the caller waits for the rest of it)."""
    from openai import AsyncOpenAI

    silence = bytes(int(RATE * 2 * 1.0))  # 1 s after each turn: server VAD needs to hear the pause
    stt_model = run.stt_model
    client = AsyncOpenAI(base_url=f"{gateway}/v1", api_key=api_key or "unused", max_retries=0)
    async with client.realtime.connect(model="june") as conn:
        events = _Events(conn)
        _, _, first = await events.wait_for(lambda ev: ev.type in ("session.created", "error"), 0, timeout)
        if first.type == "error":  # e.g. too_many_sessions: the gateway serves as many as it answers in time
            raise SessionRefused(f"{first.error.code}: {first.error.message}")
        await conn.session.update(session={"type": "realtime", "instructions": INSTRUCTIONS, "audio": {"input": {
            "transcription": {"language": "en", **({"model": stt_model} if stt_model else {})},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500, "prefix_padding_ms": 300},
        }}})  # fmt: skip
        append = conn.input_audio_buffer.append
        if background is not None:
            await asyncio.to_thread(background.start)
        for n in range(n_turns):
            text = PROMPTS[n % len(PROMPTS)]
            mark = len(events.log)
            await stream_pcm(clips[text], lambda b64: append(audio=b64))
            end = time.perf_counter()
            await stream_pcm(silence, lambda b64: append(audio=b64))
            i, t, _ = await events.wait_for(lambda ev: ev.type == "input_audio_buffer.speech_stopped", mark, timeout)
            speech_stopped = t - end
            i, t, heard = await events.wait_for(
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
            turn.prompt, turn.heard = text, heard.transcript
            run.turns.append(turn)
            console.print(
                f"{run.label} turn {n + 1}: first audio {turn.first_audio:.2f} s, stalls {turn.stalled:.2f} s,"
                f" heard {turn.heard[:50]!r} (WER {wer(text, turn.heard):.2f}) — {turn.transcript[:60]!r}"
            )
        if background is not None:
            background.stop_loops()
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


async def _measure_all(
    gateway: str,
    n_turns: int,
    n_barge: int,
    api_key: str | None,
    timeout: float,
    stt_models: list[str | None],
    busy: BackgroundSpec | None,
    burst_alone: bool = False,
) -> list[Run]:
    """An idle run (and, with `busy`, a busy one) per STT model, the same turns in each; barge-ins in
    the first run only. With `burst_alone`, first the background's burst by itself (no turns, no chat
    loops): the idle time its busy twin is compared with."""
    clips = await _clips(gateway, api_key, timeout)
    runs: list[Run] = []
    if busy and burst_alone and busy.users:
        alone = Background(gateway, api_key, dataclasses.replace(busy, chat_loops=0), timeout=timeout)
        console.print(f"the background burst alone: {busy.users} voice messages")
        await asyncio.to_thread(alone.start)
        runs.append(Run(label="burst alone", background=await asyncio.to_thread(alone.join, timeout)))
    for model in stt_models:
        for label in ("idle", "busy") if busy else ("idle",):
            run = Run(label=label, stt_model=model)
            background = Background(gateway, api_key, busy, timeout=timeout) if busy and label == "busy" else None
            barge = n_barge if not runs else 0
            try:
                await _measure(gateway, clips, n_turns, barge, api_key, timeout, run, background)
            finally:
                if background is not None:
                    console.print("busy turns done; waiting for the background burst to finish")
                    run.background = await asyncio.to_thread(background.join, timeout)
            runs.append(run)
    return runs


def realtime(
    gateway: Annotated[
        str | None,
        typer.Option(
            help="Gateway base URL (OpenAI paths under /v1) [default: the one `june up` serves, JUNE_GATEWAY_HOST/PORT: http://127.0.0.1:8000]."
        ),
    ] = None,
    turns: Annotated[int, typer.Option(min=1, help="Spoken turns answered in full (per run).")] = 20,
    barge_ins: Annotated[
        int, typer.Option(min=0, help="Extra turns interrupted while the reply plays (in the first run only).")
    ] = 5,
    api_key: Annotated[
        str | None, typer.Option(envvar="OPENAI_API_KEY", help="Key, when the gateway has keys.")
    ] = None,
    stt_model: Annotated[
        list[str] | None,
        typer.Option(
            help="Transcription model for the turns (a speech service model id; default: the gateway's). "
            "Repeat it to run the same turns with each (e.g. tiny.en and base; with --busy, idle and busy for each)."
        ),
    ] = None,
    busy: Annotated[
        bool,
        typer.Option(
            help="Run the turns twice in one run: on the idle stack, then while the background load runs through "
            "the same gateway (a `june bench load` burst of --busy-users voice messages, plus --busy-chat-loops "
            "looping chat completions sent with X-June-Class: batch)."
        ),
    ] = False,
    busy_users: Annotated[int, typer.Option(min=0, max=500, help="--busy: bot users in the background burst.")] = 10,
    busy_chat_loops: Annotated[
        int, typer.Option(min=0, max=64, help="--busy: looping batch-class chat completions in the background.")
    ] = 1,
    busy_chat_max_tokens: Annotated[
        int, typer.Option(min=1, max=4096, help="--busy: max_tokens of each background chat completion.")
    ] = 160,
    busy_burst_alone: Annotated[
        bool,
        typer.Option(
            help="--busy: first send the background burst by itself (no turns, no chat loops), to compare the "
            "busy burst's last reply with (goal: ≤ 2× its time alone)."
        ),
    ] = False,
    busy_clip: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="--busy: the burst's voice message [default: spoken text]."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each event.")] = 300.0,
    out: PlotOut = Path("realtime-bench.png"),
    json_out: Annotated[
        Path | None, typer.Option("--json", dir_okay=False, help="Also write every turn and summary here as JSON.")
    ] = None,
) -> None:
    """Live voice latency: end of speech → first reply audio / → transcript done, barge-in → stop (p50/p95),
    input-transcript WER; with --busy, idle and busy side by side and the background work's own times."""
    gateway = gateway or gateway_url()
    spec = BackgroundSpec(busy_users, busy_chat_loops, busy_chat_max_tokens, busy_clip) if busy else None
    models: list[str | None] = list(dict.fromkeys(stt_model)) if stt_model else [None]
    # stamina logs each scheduled retry of the burst as a warning; the background table counts them instead.
    logging.getLogger("stamina").setLevel(logging.ERROR)
    try:
        runs = asyncio.run(_measure_all(gateway, turns, barge_ins, api_key, timeout, models, spec, busy_burst_alone))
    except SessionRefused as e:
        console.print(f"[bold red]the gateway refused the realtime session: {e}[/]")
        raise typer.Exit(1) from None
    wide = Console(width=max(console.width, 150))  # one row per run: cut cells read worse than a long line
    if len(runs) == 1:  # without --busy and with one model: each measure in detail
        console.print(single_table(gateway, runs[0]))
    else:
        wide.print(runs_table(gateway, runs))
    for run in runs:
        if run.turns:
            console.print(f"input transcript WER, {run.title()}: {run.input_wer():.3f} over {len(run.turns)} turns")
    if spec is not None:
        console.print(f"background: {spec.describe()}")
        wide.print(background_table(runs))
        for run in runs:
            if run.background is not None and run.background.error:
                console.print(f"[bold red]{run.title()}: background failed: {run.background.error}[/]")
            for u in run.background.burst if run.background else []:
                if u.outcome != "voice":
                    console.print(f"{run.title()}: burst user {u.user}: {u.outcome} after {u.seconds:.1f} s: {u.reply}")
    for line in goals(runs):
        console.print(line)
    leaked = sum(b.audio_after_done for r in runs for b in r.barge_ins)
    console.print(f"audio deltas of a cancelled reply after its response.done: {leaked}")
    plot_runs(runs, out)
    console.print(f"plot written to {out}")
    if json_out is not None:
        report: dict[str, Any] = {"gateway": gateway, "background": asdict(spec) if spec else None}
        report |= {"goals": goals(runs), "runs": [summary(r) for r in runs]}
        json_out.write_text(json.dumps(no_nan(report), indent=2, default=str))
