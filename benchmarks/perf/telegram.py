"""`june bench telegram`: a burst of voice messages through the real Telegram bot path.

June's own Telegram bot (aiogram, built and served by `bots.telegram.__main__` as `python -m
bots.telegram` does, with the bot's own reply deadline and Retry-After waits, settings from
JUNE_BOT_*) long-polls a fake Bot API server on 127.0.0.1 (`benchmarks.perf.fake_bot_api`) and
talks to a running gateway. `--users` chats each send one voice note (OGG/Opus: `--clip`, or `--text`
spoken by the gateway's speech once before the burst) in the same getUpdates answer. With
`--cpu-job`, one other CPU-bound process runs on the box for the whole burst (issue 25's condition).

Reported: voice replies, apologies, busy notices, chats left without an answer, the time from the
burst to each chat's answer (first, p50, last), the bot's own message counters, and the 429/503
answers the gateway gave meanwhile (its /metrics, per route) and, with `--speech`, the requests
the speech service refused. The issue's goal: 20 voice messages → 20 voice replies, 0 apologies,
with one other CPU job on the box.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import httpx
import typer
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from benchmarks.perf.cpu_job import CpuJobOption, cpu_job
from benchmarks.perf.endpoints import BotsGateway, bots_gateway_url, speech_url
from benchmarks.perf.load import _percentile

if TYPE_CHECKING:
    from benchmarks.perf.fake_bot_api import Call

CHAT_BASE = 100_000
"""The first chat id; user i writes from chat CHAT_BASE + i."""


@dataclass
class ChatResult:
    """One chat's voice note: how the bot answered and when (seconds from the burst)."""

    chat: int
    outcome: str
    """"voice" (a voice reply), "apology" (a text instead), or "none" (nothing before the wait ended)."""
    seconds: float
    text: str
    """The apology's text, or the voice reply's caption (first 200 characters)."""
    notices: int
    """Busy notices the bot sent this chat before its answer."""


def _counter(metrics: str, name: str, **labels: str) -> float:
    """The sum of Prometheus text-format samples `name` whose labels include `labels`."""
    total = 0.0
    for line in metrics.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(re.search(rf'\b{k}="{re.escape(v)}"', head) for k, v in labels.items()):
            total += float(value)
    return total


def _busy_answers(metrics: str) -> dict[str, float]:
    """429/503 answers per route in the gateway's /metrics (june_gateway_requests_total)."""
    out: dict[str, float] = {}
    for line in metrics.splitlines():
        m = re.match(r"june_gateway_requests_total\{(.*)\} ([0-9.e+]+)$", line)
        if not m:
            continue
        route = re.search(r'route="([^"]*)"', m.group(1))
        status = re.search(r'status="([^"]*)"', m.group(1))
        if route and status and status.group(1) in ("429", "503"):
            key = f"{route.group(1)} {status.group(1)}"
            out[key] = out.get(key, 0.0) + float(m.group(2))
    return out


async def _metrics(http: httpx.AsyncClient, url: str | None) -> str:
    """`url`/metrics as text, "" when it is not given or cannot be read (the report then says n/a)."""
    if not url:
        return ""
    try:
        response = await http.get(f"{url}/metrics")
    except httpx.HTTPError:
        return ""
    return response.text if response.is_success else ""


def _outcomes(calls: list[Call], chats: list[int], busy_notice: str) -> dict[int, Call]:
    """Each chat's answer: its first accepted sendVoice, or sendMessage that is not the busy notice."""
    done: dict[int, Call] = {}
    for call in calls:
        if call.failed or call.method.lower() not in ("sendvoice", "sendmessage"):
            continue
        chat = int(call.params.get("chat_id") or 0)
        if (
            chat in chats
            and chat not in done
            and (call.method.lower() == "sendvoice" or call.params.get("text") != busy_notice)
        ):
            done[chat] = call
    return done


async def _voice_note(http: httpx.AsyncClient, gateway: str, clip: Path | None, text: str) -> bytes:
    """The voice note every user sends: `clip`'s bytes, or `text` spoken by the gateway as OGG/Opus."""
    if clip is not None:
        return await asyncio.to_thread(clip.read_bytes)
    response = await http.post(
        f"{gateway}/v1/audio/speech", json={"model": "tts-1", "input": text, "voice": "echo", "response_format": "opus"}
    )
    response.raise_for_status()
    return response.content


async def _burst(
    gateway: str, speech: str | None, api_key: str | None, users: int, voice_clip: Path | None, text: str, cpu: bool
) -> tuple[list[ChatResult], dict[str, object]]:
    """Run the burst; the per-chat results and the counters (bot, gateway 429/503, speech refusals)."""
    from benchmarks.perf.fake_bot_api import TOKEN, FakeBotAPI
    from bots.conversation import BUSY_NOTICE
    from bots.settings import BotSettings, TelegramSettings
    from bots.telegram.__main__ import build, serve

    updates: dict[str, object] = {"base_url": gateway, "rate_limit": 0, "allowed_ids": []}
    if api_key:
        updates["api_key"] = api_key
    settings = BotSettings().model_copy(update=updates)
    chats = [CHAT_BASE + i for i in range(users)]
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(timeout=settings.request_timeout, headers=headers) as http, FakeBotAPI() as api:
        voice = await _voice_note(http, gateway, voice_clip, text)
        before = (await _metrics(http, gateway), await _metrics(http, speech))
        config = TelegramSettings(token=SecretStr(TOKEN), api_server=api.url, polling_timeout=1, port=0)
        async with build(settings, config) as june:
            task = asyncio.create_task(serve(june, config, handle_signals=False))
            try:
                await api.wait_for("getUpdates", timeout=30)
                with cpu_job(cpu):
                    start = time.perf_counter()
                    for chat in chats:
                        await api.enqueue_voice(chat, voice)
                    wait = settings.reply_deadline + 60  # the bot answers by its deadline, at the latest
                    await api.wait_until(lambda calls: len(_outcomes(calls, chats, BUSY_NOTICE)) == users, wait)
                counts = {o: june.conversations.metrics.value("voice", o) for o in ("reply", "error", "refused")}
            finally:
                june.stop()
                await asyncio.wait_for(task, 60)
        after = (await _metrics(http, gateway), await _metrics(http, speech))
    done = _outcomes(api.calls, chats, BUSY_NOTICE)
    results = []
    for chat in chats:
        notices = sum(c.params.get("text") == BUSY_NOTICE for c in api.calls_to("sendMessage", chat_id=chat))
        call = done.get(chat)
        if call is None:
            results.append(ChatResult(chat, "none", math.nan, "", notices))
        elif call.method.lower() == "sendvoice":
            results.append(
                ChatResult(chat, "voice", call.at - start, str(call.params.get("caption", ""))[:200], notices)
            )
        else:
            results.append(
                ChatResult(chat, "apology", call.at - start, str(call.params.get("text", ""))[:200], notices)
            )
    busy_before, busy_after = _busy_answers(before[0]), _busy_answers(after[0])
    rejected = _counter(after[1], "june_speech_rejected_total") - _counter(before[1], "june_speech_rejected_total")
    counters: dict[str, object] = {
        "bot_voice_messages": counts,
        "gateway_busy_answers": {k: v - busy_before.get(k, 0.0) for k, v in busy_after.items()} if after[0] else None,
        "speech_rejected": rejected if after[1] else None,
    }
    return results, counters


def telegram(
    gateway: BotsGateway = None,
    users: Annotated[
        int, typer.Option("--users", "-n", min=1, max=500, help="Chats sending one voice note each, all at once.")
    ] = 20,
    cpu: CpuJobOption = False,
    clip: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="The voice note (any format speech decodes).")
    ] = None,
    text: Annotated[
        str, typer.Option(help="Without --clip: what the voice note says (spoken by the gateway's speech first).")
    ] = "What is the capital of France?",
    speech: Annotated[
        str | None,
        typer.Option(
            help="The speech service's base URL, to count the requests it refused (its /metrics) [default: with "
            "no --gateway either, the one `june up` serves, JUNE_SPEECH_HOST/PORT: http://127.0.0.1:8001]."
        ),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="JUNE_API_KEY", help="Gateway API key, if it needs one.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(dir_okay=False, writable=True, help="Also write the results here as JSON.")
    ] = None,
) -> None:
    """N voice notes at once through the real Telegram bot (aiogram, fake Bot API): voice replies, apologies, 503s."""
    base_url, local = bots_gateway_url(gateway)
    if speech is None and local:
        speech = speech_url()  # the stack `june up` serves on this machine
    logging.getLogger("stamina").setLevel(logging.ERROR)  # retries are counted (429/503), not logged
    try:
        results, counters = asyncio.run(_burst(base_url, speech, api_key, users, clip, text, cpu))
    except httpx.HTTPError as e:
        Console().print(f"[bold red]june bench telegram: could not prepare the voice note via {base_url}: {e}[/]")
        raise typer.Exit(1) from e
    answered = [r.seconds for r in results if r.outcome != "none"]
    voice = sum(r.outcome == "voice" for r in results)
    apologies = sum(r.outcome == "apology" for r in results)
    summary: dict[str, object] = {
        "gateway": base_url,
        "users": users,
        "cpu_job": cpu,
        "voice_replies": voice,
        "apologies": apologies,
        "no_answer": sum(r.outcome == "none" for r in results),
        "busy_notices": sum(r.notices for r in results),
        "first_s": min(answered, default=math.nan),
        "p50_s": _percentile(answered, 0.5),
        "last_s": max(answered, default=math.nan),
        **counters,
        "goal_met": voice == users and apologies == 0,
    }
    console = Console()
    table = Table(
        title=f"{users} voice notes at once through the Telegram bot via {base_url}"
        + (", one other CPU job running" if cpu else "")
    )
    for column in ("voice replies", "apologies", "no answer", "busy notices", "first s", "p50 s", "last s"):
        table.add_column(column, justify="right")
    table.add_row(
        *(str(summary[k]) for k in ("voice_replies", "apologies", "no_answer", "busy_notices")),
        *(f"{summary[k]:.1f}" for k in ("first_s", "p50_s", "last_s")),
    )
    console.print(table)
    console.print(f"the bot's voice-message counters: {counters['bot_voice_messages']}")
    busy = counters["gateway_busy_answers"]
    console.print(f"429/503 answers from the gateway (its /metrics, per route): {busy if busy is not None else 'n/a'}")
    if speech:
        rejected = counters["speech_rejected"]
        console.print(
            "requests the speech service refused (its june_speech_rejected_total): "
            + (f"{rejected}" if rejected is not None else f"n/a ({speech}/metrics could not be read)")
        )
    for r in results:
        if r.outcome != "voice":
            console.print(f"chat {r.chat}: {r.outcome} after {r.seconds:.1f} s: {r.text}")
    console.print(f"goal ({users} voice replies, 0 apologies): " + ("met" if summary["goal_met"] else "not met"))
    if out is not None:
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}
        rows = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(r).items()} for r in results
        ]
        out.write_text(json.dumps({"summary": clean, "chats": rows}, indent=2))
