"""`june bench pipeline`: the bots' voice pipeline, sequential vs overlapped, against a running gateway.

For each prompt, the same text exchange with speech (`VoicePipeline.run_text(..., speak=True)`)
runs once per mode, alternating, `--rounds` times:

- sequential: the whole reply is generated (streamed but waited for), then synthesised in one request;
- overlapped: each sentence goes to synthesis as soon as the model has finished it.

Reported per mode: time until the reply's audio is ready (OGG/Opus encoded), p50 and mean, the time
at which the first sentence went to synthesis, and the gain (sequential / overlapped). Replies are
capped by `--max-tokens` and asked for several sentences, where overlap can help; a one-sentence
reply gains nothing. Temperature 0 (default) makes both modes speak the same replies. Default gateway: the
one `june up` serves (benchmarks.perf.endpoints).
"""

from __future__ import annotations

import asyncio
import statistics
from typing import TYPE_CHECKING, Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

from benchmarks.perf.endpoints import gateway_url

if TYPE_CHECKING:
    from core.voice import PipelineResult

PROMPTS = [
    "Describe the city of Paris in three short sentences.",
    "Give me three short tips for sleeping better, one sentence each.",
    "Explain in three short sentences why the sky is blue.",
]
SYSTEM = "You are June, a voice assistant. Answer in plain spoken sentences, without lists or formatting."


async def _measure(
    base_url: str, rounds: int, max_tokens: int, timeout: float, temperature: float
) -> dict[str, list[PipelineResult]]:
    from core.voice import VoicePipeline  # PyAV and numpy: loaded when the bench runs, not with the CLI

    results: dict[str, list[PipelineResult]] = {"sequential": [], "overlapped": []}
    async with httpx.AsyncClient(timeout=timeout) as http:
        pipelines = {
            mode: VoicePipeline(
                http,
                base_url=base_url,
                system_prompt=SYSTEM,
                max_reply_tokens=max_tokens,
                overlap=(mode == "overlapped"),
                temperature=temperature,
            )
            for mode in results
        }
        await pipelines["sequential"].run_text("Say OK.", [], speak=True)  # warm-up: model lookup, caches
        for _ in range(rounds):
            for prompt in PROMPTS:
                for mode, pipeline in pipelines.items():
                    results[mode].append(await pipeline.run_text(prompt, [], speak=True))
    return results


def pipeline(
    gateway: Annotated[
        str | None,
        typer.Option(
            help="Gateway base URL (OpenAI paths under /v1) [default: the one `june up` serves, JUNE_GATEWAY_HOST/PORT: http://127.0.0.1:8000]."
        ),
    ] = None,
    rounds: Annotated[int, typer.Option(min=1, help="Passes over the prompts, per mode.")] = 1,
    max_tokens: Annotated[int, typer.Option(min=8, help="max_tokens per reply.")] = 80,
    timeout: Annotated[float, typer.Option(help="Seconds per gateway request.")] = 300.0,
    temperature: Annotated[
        float, typer.Option(help="Sampling temperature (0: both modes get the same replies).")
    ] = 0.0,
) -> None:
    """Time to audio ready, sequential vs overlapped (stream + per-sentence synthesis)."""
    gateway = gateway or gateway_url()
    results = asyncio.run(_measure(gateway, rounds, max_tokens, timeout, temperature))
    table = Table(title=f"Voice pipeline via {gateway} ({len(PROMPTS) * rounds} replies per mode)")
    for column in (
        "mode",
        "audio ready p50 s",
        "mean s",
        "first sentence to TTS p50 s",
        "audio s (mean)",
        "reply chars",
    ):
        table.add_column(column, justify="right" if column != "mode" else "left")
    p50: dict[str, float] = {}
    for mode, runs in results.items():
        totals = [r.timings.total for r in runs]
        firsts = [r.timings.first_sentence for r in runs if r.timings.first_sentence is not None]
        p50[mode] = statistics.median(totals)
        table.add_row(
            mode,
            f"{p50[mode]:.2f}",
            f"{statistics.mean(totals):.2f}",
            f"{statistics.median(firsts):.2f}" if firsts else "-",
            f"{statistics.mean(r.audio_seconds for r in runs):.1f}",
            f"{statistics.mean(len(r.reply) for r in runs):.0f}",
        )
    console = Console()
    console.print(table)
    console.print(f"overlap gain (p50 sequential / overlapped): {p50['sequential'] / p50['overlapped']:.2f}x")
