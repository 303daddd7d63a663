"""`june bench load`: a burst of voice messages, as N bot users sending one each at the same moment.

Each user's message goes through the bots' own core (`bots.conversation.Conversations` over
`core.voice.VoicePipeline`, configured from JUNE_BOT_* like the bots): transcribe → chat →
speak against a running gateway, with the bots' reply deadline, their Retry-After waits and their
"busy" notice. The voice message is `--clip` (any format speech decodes) or `--text` spoken by the
gateway's own speech service once before the burst, as OGG/Opus like a Telegram voice note.

Reported: voice replies, apologies (replies that are an error text), other refusals, busy notices
sent, 429/503 answers seen from the gateway, and the time from the burst's start to each reply's
audio (first, p50, p95, max), in a table and, with `--out`, as JSON (summary and one row per user).
The issue's target for 20 users sending a 2 s message on the CPU defaults: 20 voice replies,
0 apologies, the first within 10 s, the last within 120 s. Numbers move with the machine's load.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

from benchmarks.perf.cpu_job import CpuJobOption, cpu_job
from benchmarks.perf.endpoints import BotsGateway, bots_gateway_url

if TYPE_CHECKING:
    from bots.conversation import Conversations

TARGET = {"first_s": 10.0, "last_s": 120.0}
"""The issue's burst target (20 users, 2 s messages): every reply a voice reply, first and last within these."""


@dataclass
class UserResult:
    """One user's message: how it ended and when (seconds from the burst's start)."""

    user: int
    outcome: str  # "voice", "text", "apology" or "refused"
    seconds: float
    reply: str
    notices: int


def _percentile(values: list[float], q: float) -> float:
    """The `q` (0–1) quantile by nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class Burst:
    """A burst made ready by `prepared_burst`: `await burst.run()` sends every user's message at once."""

    def __init__(self, conversations: Conversations, audio: bytes, filename: str, users: int, clip_s: float) -> None:
        self.conversations = conversations
        self.audio = audio
        self.filename = filename
        self.users = users
        self.clip_s = clip_s
        """The voice message's length in seconds."""
        self.busy_answers = 0
        """429/503 answers the gateway gave since `run` began (each waited out or turned into a reply)."""

    async def run(self) -> list[UserResult]:
        """Every user sends the message at the same moment; results in user order, `seconds` from this call."""
        self.busy_answers = 0
        start = time.perf_counter()

        async def user(i: int) -> UserResult:
            notices: list[str] = []

            async def notify(notice: str) -> None:
                notices.append(notice)

            async def fetch() -> bytes:
                return self.audio

            reply = await self.conversations.voice(
                f"bench:{i}", f"user-{i}", fetch, filename=self.filename, notify=notify
            )
            outcome = {"reply": "voice" if reply.audio else "text", "error": "apology"}.get(reply.outcome, "refused")
            return UserResult(i, outcome, time.perf_counter() - start, reply.text[:200], len(notices))

        return list(await asyncio.gather(*(user(i) for i in range(self.users))))


@contextlib.asynccontextmanager
async def prepared_burst(
    base_url: str, api_key: str | None, users: int, clip: Path | None, text: str
) -> AsyncIterator[Burst]:
    """The bots' core configured from JUNE_BOT_* against `base_url` (no rate limit, no allow-list),
    with the voice message made (`clip`, or `text` spoken by the gateway) and the chat model looked
    up, as a running bot has them; the HTTP client closes when the block ends. Raises what the
    gateway's answers raise while preparing (httpx.HTTPError, openai.APIError)."""
    from bots.compose import create_conversations, create_pipeline, create_store
    from bots.settings import BotSettings
    from bots.status import create_metrics
    from core.audio import decode

    updates: dict[str, object] = {"base_url": base_url, "rate_limit": 0, "allowed_ids": []}
    if api_key:
        updates["api_key"] = api_key
    settings = BotSettings().model_copy(update=updates)
    burst: Burst | None = None

    async def count_busy(response: httpx.Response) -> None:
        if burst is not None and response.status_code in (429, 503):
            burst.busy_answers += 1

    async with httpx.AsyncClient(timeout=settings.request_timeout, event_hooks={"response": [count_busy]}) as http:
        pipeline = create_pipeline(settings, http)
        audio = await asyncio.to_thread(clip.read_bytes) if clip else await pipeline.speak(text)
        seconds = len(await asyncio.to_thread(decode, audio, 16000)) / 16000
        await pipeline.client.chat_model()  # looked up once, as a running bot would have
        conversations = create_conversations(settings, pipeline, create_store(settings), create_metrics("bench"))
        burst = Burst(conversations, audio, clip.name if clip else "voice.ogg", users, seconds)
        yield burst


async def _burst(
    base_url: str, api_key: str | None, users: int, clip: Path | None, text: str
) -> tuple[list[UserResult], int, float]:
    """Run the burst; returns the per-user results, the 429/503 answers seen, and the clip's seconds."""
    async with prepared_burst(base_url, api_key, users, clip, text) as burst:
        results = await burst.run()
    return results, burst.busy_answers, burst.clip_s


def load(
    gateway: BotsGateway = None,
    users: Annotated[
        int, typer.Option("--users", "-n", min=1, max=500, help="Users sending one voice message each, all at once.")
    ] = 20,
    clip: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="The voice message (any format speech decodes).")
    ] = None,
    text: Annotated[
        str, typer.Option(help="Without --clip: what the voice message says (spoken by the gateway's speech first).")
    ] = "What is the capital of France?",
    api_key: Annotated[
        str | None, typer.Option(envvar="JUNE_API_KEY", help="Gateway API key, if it needs one.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(dir_okay=False, writable=True, help="Also write the results here as JSON.")
    ] = None,
    cpu: CpuJobOption = False,
) -> None:
    """N concurrent voice round trips through the bots' core: time to reply audio, apologies, 503s."""
    base_url, _ = bots_gateway_url(gateway)
    try:
        # stamina logs each scheduled retry as a warning; the table counts them (429/503 seen) instead.
        logging.getLogger("stamina").setLevel(logging.ERROR)
        with cpu_job(cpu):
            results, busy_answers, clip_s = asyncio.run(_burst(base_url, api_key, users, clip, text))
    except Exception as e:  # the clip could not be made: nothing was measured
        Console().print(f"[bold red]june bench load: could not prepare the voice message via {base_url}: {e}[/]")
        raise typer.Exit(1) from e
    voice = [r.seconds for r in results if r.outcome == "voice"]
    apologies = sum(r.outcome == "apology" for r in results)
    first_s, max_s = min(voice, default=math.nan), max(voice, default=math.nan)
    summary = {
        "gateway": base_url,
        "users": users,
        "cpu_job": cpu,
        "clip_s": round(clip_s, 2),
        "voice_replies": len(voice),
        "text_replies": sum(r.outcome == "text" for r in results),
        "apologies": apologies,
        "refused": sum(r.outcome == "refused" for r in results),
        "busy_notices": sum(r.notices for r in results),
        "busy_answers": busy_answers,
        "first_s": first_s,
        "p50_s": _percentile(voice, 0.5),
        "p95_s": _percentile(voice, 0.95),
        "max_s": max_s,
        "target_met": len(voice) == users
        and apologies == 0
        and first_s <= TARGET["first_s"]
        and max_s <= TARGET["last_s"],
    }
    table = Table(
        title=f"{users} voice messages of {clip_s:.1f} s at once via {base_url}"
        + (", one other CPU job running" if cpu else "")
    )
    for column in (
        "voice replies",
        "apologies",
        "refused",
        "busy notices",
        "429/503 seen",
        "first s",
        "p50 s",
        "p95 s",
        "max s",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        *(str(summary[k]) for k in ("voice_replies", "apologies", "refused", "busy_notices", "busy_answers")),
        *(f"{summary[k]:.1f}" for k in ("first_s", "p50_s", "p95_s", "max_s")),
    )
    console = Console()
    console.print(table)
    for r in results:
        if r.outcome != "voice":
            console.print(f"user {r.user}: {r.outcome} after {r.seconds:.1f} s: {r.reply}")
    console.print(
        f"target (all voice, 0 apologies, first ≤ {TARGET['first_s']:.0f} s, last ≤ {TARGET['last_s']:.0f} s): "
        + ("met" if summary["target_met"] else "not met")
    )
    if out is not None:
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}
        out.write_text(json.dumps({"summary": clean, "users": [asdict(r) for r in results]}, indent=2))
