"""`june bench realtime`'s results and how they are reported: per-turn measures, the tables (one run
in detail, or idle and busy runs side by side with the background's own results), issue 25's goals,
the plot and the JSON. Measuring is benchmarks/perf/realtime.py.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from benchmarks.perf.background import BackgroundResult
from benchmarks.perf.wer import corpus_wer


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
    prompt: str = ""
    """What the user said (the text the clip was spoken from)."""
    heard: str = ""
    """What the server heard: `conversation.item.input_audio_transcription.completed`'s transcript."""


@dataclass
class BargeIn:
    """Seconds from the first sample of the interrupting speech to the server noticing it and to the reply's end."""

    speech_started: float
    cancelled: float | None = None
    """None when the reply ended before the user spoke: nothing to stop."""
    audio_after_done: int = 0


@dataclass
class Run:
    """One realtime session's measurements: `label` "idle" or "busy", `stt_model` None for the gateway's default."""

    label: str = "idle"
    stt_model: str | None = None
    turns: list[Turn] = field(default_factory=list)
    barge_ins: list[BargeIn] = field(default_factory=list)
    background: BackgroundResult | None = None
    """The background work that ran through the turns of a busy run."""

    def title(self) -> str:
        """How the tables name the run: "idle, STT tiny.en", "busy, STT default", "burst alone"."""
        return self.label if self.label == "burst alone" else f"{self.label}, STT {self.stt_model or 'default'}"

    def input_wer(self) -> float:
        """Corpus WER of what the server heard against the prompts, over every turn (NaN without turns)."""
        return corpus_wer([t.prompt for t in self.turns], [t.heard for t in self.turns])


def _pct(values: list[float], q: float) -> float:
    """The `q` (0–1) quantile by nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


IDLE_GOAL_P50 = 1.2
"""Issue 25's goal, 2 cores: end of speech → first reply audio p50 on an idle stack (seconds)."""
BUSY_GOAL = {"p50": 1.25, "p95": 2.0}
"""Issue 25's goals under the background load, as multiples of the idle p50: busy p50 and busy p95."""


def _stages(turns: list[Turn]) -> dict[str, list[float]]:
    """Where each turn's time to first audio went: VAD tail, STT, LLM first sentence, TTS first chunk."""
    return {
        "VAD tail (end of speech → speech_stopped)": [t.speech_stopped for t in turns],
        "STT (→ transcript)": [t.transcribed - t.speech_stopped for t in turns],
        "LLM first sentence": [t.first_text - t.transcribed for t in turns],
        "TTS first chunk": [t.first_audio - t.first_text for t in turns],
    }


def plot_runs(runs: list[Run], out: Path) -> None:
    """Stacked per-turn bars (one panel per run, same scale: idle and busy side by side) and, when
    there were barge-ins, their stop times."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in runs if r.turns]
    stops = [b.cancelled for r in runs for b in r.barge_ins if b.cancelled is not None]
    barge = any(r.barge_ins for r in runs)
    widths = [max(3, len(r.turns)) for r in runs] + ([2] if barge else [])
    fig, axes = plt.subplots(
        1, len(widths), figsize=(4 + 0.5 * sum(widths), 4.5), gridspec_kw={"width_ratios": widths}, squeeze=False
    )
    top = max((t.first_audio for r in runs for t in r.turns), default=1.0) * 1.1
    for ax, run in zip(axes[0], runs, strict=False):
        bottom = [0.0] * len(run.turns)
        for label, values in _stages(run.turns).items():
            ax.bar(range(1, len(run.turns) + 1), values, bottom=bottom, label=label)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.axhline(IDLE_GOAL_P50, color="grey", ls="--", lw=1, label=f"idle goal p50 {IDLE_GOAL_P50} s")
        ax.set(title=run.title(), xlabel="turn", ylim=(0, top))
        ax.set_xticks(range(1, len(run.turns) + 1))
    axes[0][0].set_ylabel("seconds, end of speech → first reply audio")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    if barge:
        ax = axes[0][-1]
        ax.boxplot([stops or [0.0]], tick_labels=["barge-in → reply stopped"])
        ax.set(title="Barge-in", ylabel="seconds")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(out, dpi=90)


def single_table(gateway: str, run: Run) -> Table:
    """One run in detail: p50/p95 of each measure."""
    every = run.turns
    rows: list[tuple[str, list[float], str]] = [
        ("end of speech → first reply audio", [t.first_audio for t in every], f"p50 ≤ {IDLE_GOAL_P50}"),
        ("end of speech → reply transcript done", [t.transcript_done for t in every], ""),
        *((f"  {label}", values, "") for label, values in _stages(every).items()),
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
        f"STT {run.stt_model or 'gateway default'}"
    )
    for column in ("seconds", "p50", "p95", "n", "goal"):
        table.add_column(column, justify="left" if column == "seconds" else "right")
    for label, values, goal in rows:
        if values:
            table.add_row(label, f"{_pct(values, 0.5):.2f}", f"{_pct(values, 0.95):.2f}", str(len(values)), goal)
    return table


def _idle_for(run: Run, runs: list[Run]) -> Run | None:
    """The idle run with the same STT model as `run` (what a busy run is compared with)."""
    return next((r for r in runs if r.label == "idle" and r.stt_model == run.stt_model and r.turns), None)


def _per_run_table(title: str, caption: str, columns: list[str]) -> Table:
    """A table with a row per run: a "run" column (left, never wrapped), then `columns` (right)."""
    table = Table(title=title, caption=caption)
    table.add_column("run", no_wrap=True)
    for column in columns:
        table.add_column(column, justify="right")
    return table


def runs_table(gateway: str, runs: list[Run]) -> Table:
    """One row per run (idle and busy): first audio p50/p95, busy/idle ratios, stages p50/p95, input WER."""
    table = _per_run_table(
        f"/v1/realtime via {gateway}: idle and busy runs (seconds; a/b = p50/p95)",
        "first audio: end of speech → first reply audio; ×idle: busy p50 and p95 over the idle p50 "
        "(goals ≤ 1.25×, ≤ 2×); VAD tail, STT, LLM first sentence, TTS first chunk: its parts; done: → reply "
        "transcript done; stalls: playback underruns per turn; WER: input transcript vs the prompts",
        ["turns", "p50", "p95", "p50 ×idle", "p95 ×idle", "VAD", "STT", "LLM", "TTS", "done", "stalls", "WER"],
    )
    for run in runs:
        if not run.turns:
            continue
        first = [t.first_audio for t in run.turns]
        idle = _idle_for(run, runs)
        ratios = ["", ""]
        if run.label == "busy" and idle is not None and first:
            base = _pct([t.first_audio for t in idle.turns], 0.5)
            ratios = [f"{_pct(first, 0.5) / base:.2f}×", f"{_pct(first, 0.95) / base:.2f}×"]
        stages = [*_stages(run.turns).values(), [t.transcript_done for t in run.turns], [t.stalled for t in run.turns]]
        table.add_row(
            run.title(), str(len(run.turns)), f"{_pct(first, 0.5):.2f}", f"{_pct(first, 0.95):.2f}", *ratios,
            *(f"{_pct(v, 0.5):.2f}/{_pct(v, 0.95):.2f}" for v in stages), f"{run.input_wer():.3f}",
        )  # fmt: skip
    return table


def background_table(runs: list[Run]) -> Table:
    """The background work of each busy run: the burst's replies and times, the chat loops' completions."""
    table = _per_run_table(
        "Background work during the busy runs (seconds from its start)",
        "burst: bot users, voice replies, apologies, refusals, 429/503 answers, first and last reply; "
        "chat: batch-class completions done, failed, mean and p95 time, the class header as sent",
        [
            "users",
            "voice",
            "apologies",
            "refused",
            "429/503",
            "first",
            "last",
            "chats",
            "errors",
            "mean",
            "p95",
            "class",
        ],
    )
    for run in runs:
        bg = run.background
        if bg is None:
            continue
        voice = [u.seconds for u in bg.burst if u.outcome == "voice"]
        chats = bg.chat_seconds
        table.add_row(
            run.title(), str(len(bg.burst)), str(len(voice)), str(sum(u.outcome == "apology" for u in bg.burst)),
            str(sum(u.outcome == "refused" for u in bg.burst)), str(bg.burst_busy_answers),
            f"{min(voice, default=math.nan):.1f}", f"{max(voice, default=math.nan):.1f}",
            *((str(len(chats)), str(len(bg.chat_errors)), f"{statistics.fmean(chats):.1f}" if chats else "",
               f"{_pct(chats, 0.95):.1f}" if chats else "", bg.class_header)
              if chats or bg.chat_errors else ("", "", "", "", "")),
        )  # fmt: skip
    return table


def _last_reply(run: Run) -> float:
    """When the last voice reply of `run`'s background burst came (NaN: none, or no burst)."""
    voice = [u.seconds for u in run.background.burst if u.outcome == "voice"] if run.background else []
    return max(voice, default=math.nan)


def goals(runs: list[Run]) -> list[str]:
    """Issue 25's goals, met or not, for each run they apply to."""
    lines = []
    alone = next((r for r in runs if r.label == "burst alone"), None)
    for run in runs:
        if run.label == "busy" and run.background is not None and run.background.burst:
            bg = run.background
            voice = sum(u.outcome == "voice" for u in bg.burst)
            every = voice == len(bg.burst)
            lines.append(f"{run.title()}: burst {voice}/{len(bg.burst)} voice replies: {'met' if every else 'not met'}")
            if alone is not None and not math.isnan(base := _last_reply(alone)):
                ratio = _last_reply(run) / base
                lines.append(
                    f"{run.title()}: burst last reply {ratio:.2f}× its time alone ({base:.1f} s) ≤ 2×: "
                    + ("met" if ratio <= 2 else "not met")
                )
        first = [t.first_audio for t in run.turns]
        if not first:
            continue
        if run.label == "idle":
            p50 = _pct(first, 0.5)
            lines.append(
                f"{run.title()}: p50 {p50:.2f} s ≤ {IDLE_GOAL_P50} s: {'met' if p50 <= IDLE_GOAL_P50 else 'not met'}"
            )
        elif (idle := _idle_for(run, runs)) is not None:
            base = _pct([t.first_audio for t in idle.turns], 0.5)
            for q, limit in BUSY_GOAL.items():
                ratio = _pct(first, 0.95 if q == "p95" else 0.5) / base
                lines.append(
                    f"{run.title()}: {q} {ratio:.2f}× idle p50 ≤ {limit}×: {'met' if ratio <= limit else 'not met'}"
                )
    return lines


def summary(run: Run) -> dict[str, Any]:
    """A run as JSON: every turn and barge-in, the input WER and the background's results."""
    out = asdict(run)
    out["input_wer"] = run.input_wer()
    return out


def no_nan(value: Any) -> Any:
    """`value` with every NaN float as None (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [no_nan(v) for v in value]
    return value
