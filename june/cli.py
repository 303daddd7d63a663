"""The `june` command (typer): start the stack or one service, and run a voice round trip.

uv run june up                       # speech + LLM + gateway (+ bots with tokens), Ctrl-C stops
uv run june voice in.ogg -o out.ogg  # one voice round trip against a running stack
uv run june llm | speech | gateway | telegram | discord   # one service in the foreground
"""

from __future__ import annotations

import asyncio
import dataclasses
import runpy
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from june.smoke import smoke


class _Commands(TyperGroup):
    """june's commands, with `bench` imported only when it is asked for (or listed in --help):
    the CLI sits on top of every service, and `june up` has no business loading the benchmarks."""

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted({*super().list_commands(ctx), "bench"})

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name == "bench":
            from benchmarks.cli import bench

            command = typer.main.get_command(bench)
            command.name = cmd_name
            return command
        return super().get_command(ctx, cmd_name)


app = typer.Typer(help="june: a self-hosted voice and coding assistant stack.", no_args_is_help=True, cls=_Commands)
console = Console(highlight=False)
app.command("smoke")(smoke)


@app.command()
def up(
    quiet: Annotated[bool, typer.Option(help="Hide the services' own logs.")] = False,
    bots: Annotated[bool, typer.Option(help="Start the bots whose tokens are set.")] = True,
) -> None:
    """Start speech, the LLM server and the gateway (and bots with tokens) on 127.0.0.1."""
    from june import stack

    raise typer.Exit(stack.run(stack.plan(with_bots=bots), quiet=quiet))


@app.command()
def voice(
    output: Annotated[
        Path, typer.Option("--output", "-o", dir_okay=False, help="Where to write the spoken reply (OGG/Opus).")
    ],
    audio: Annotated[
        Path | None,
        typer.Argument(help="Voice message: any format the speech service decodes.", exists=True, dir_okay=False),
    ] = None,
    say: Annotated[
        str | None, typer.Option(help="Instead of AUDIO: this question, spoken first by june's own TTS.")
    ] = None,
    language: Annotated[
        str | None, typer.Option(help="ISO 639-1 language of the message [default: detected; 'en' with --say].")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="Gateway base URL [default: JUNE_BOT_BASE_URL or http://127.0.0.1:8000].")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="JUNE_API_KEY", help="Gateway API key, if it needs one.")
    ] = None,
) -> None:
    """Send one voice message through transcribe → chat → speak and print each stage's time.

    The message is AUDIO, or with `--say "…"` the question spoken by the stack's own speech
    service (so the round trip works right after `june up`, with no recorder or espeak-ng). The
    offline voices are Japanese ones that Whisper may take for Japanese, so `--say` transcribes
    as English unless `--language` says otherwise."""
    if (audio is None) == (say is None):
        raise typer.BadParameter("give either AUDIO or --say TEXT (one of them)")
    import httpx

    from bots.compose import create_pipeline
    from bots.settings import BotSettings
    from core.voice_errors import VoiceError

    settings = BotSettings()
    settings = settings.model_copy(
        update={
            "base_url": base_url or settings.base_url,
            "api_key": SecretStr(api_key) if api_key else settings.api_key,
            "language": language or ("en" if say is not None else settings.language),
        }
    )
    url = settings.base_url

    async def round_trip():
        async with httpx.AsyncClient(timeout=settings.request_timeout) as http:
            pipeline = create_pipeline(settings, http)
            message = audio.read_bytes() if audio is not None else await pipeline.speak(say or "")
            return await pipeline.run_voice(message, [])

    try:
        result = asyncio.run(round_trip())
    except VoiceError as e:
        console.print(f"[bold red]june voice: {e}[/]")
        raise typer.Exit(1) from e
    except httpx.HTTPError as e:
        console.print(f"[bold red]june voice: cannot reach {url}: {e!r}. Is `june up` running?[/]")
        raise typer.Exit(1) from e
    output.write_bytes(result.audio or b"")
    console.print(f"[bold]you said:[/] {result.transcript}")
    console.print(f"[bold]june:[/]     {result.reply}")
    console.print(f"[bold]reply audio:[/] {output}")
    table = Table("stage", "seconds")
    for stage, seconds in dataclasses.asdict(result.timings).items():
        table.add_row(stage, "-" if seconds is None else f"{seconds:.2f}")
    console.print(table)


def _run_module(module: str) -> None:
    sys.argv = [module]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


@app.command()
def llm() -> None:
    """Serve the LLM with vLLM's OpenAI server (GPU preset when it fits, else the CPU default)."""
    _run_module("june.llm")


@app.command()
def speech() -> None:
    """Serve the speech service (faster-whisper + Piper or Kokoro)."""
    _run_module("speech")


@app.command()
def gateway() -> None:
    """Serve the gateway: one OpenAI base URL for chat, models and audio."""
    _run_module("gateway")


@app.command()
def telegram() -> None:
    """Run the Telegram bot (needs JUNE_TELEGRAM_TOKEN)."""
    _run_module("bots.telegram")


@app.command()
def discord() -> None:
    """Run the Discord bot (needs JUNE_DISCORD_TOKEN)."""
    _run_module("bots.discord")
