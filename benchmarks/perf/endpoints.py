"""Where the stack benchmarks find the stack: by default, where `june up` serves it on this machine.

`june up` (june.stack.plan) serves the gateway at its settings' host and port (``JUNE_GATEWAY_HOST``,
``JUNE_GATEWAY_PORT``; http://127.0.0.1:8000 by default). The benchmarks read the same settings,
so that `june up` in one terminal and `june bench …` in another meet without options.
"""

from __future__ import annotations

from typing import Annotated

import typer

from core.procs import local_url

BotsGateway = Annotated[
    str | None,
    typer.Option(
        help="Gateway base URL [default: JUNE_BOT_BASE_URL, else the one `june up` serves: http://127.0.0.1:8000]."
    ),
]
"""The `--gateway` option of the benchmarks that act as bot users (`bots_gateway_url` resolves it)."""


def gateway_url() -> str:
    """The gateway's base URL (without /v1) as `june up` serves it: its settings from ``JUNE_GATEWAY_*``."""
    from gateway.settings import GatewaySettings

    settings = GatewaySettings()
    return local_url(settings.host, settings.port)


def speech_url() -> str:
    """The speech service's base URL as `june up` serves it: its settings from ``JUNE_SPEECH_*``."""
    from speech.settings import SpeechSettings

    settings = SpeechSettings()
    return local_url(settings.host, settings.port)


def bots_gateway_url(given: str | None) -> tuple[str, bool]:
    """The gateway a benchmark acting as bot users talks to: `given`, else the bots' own
    ``JUNE_BOT_BASE_URL`` when set, else `gateway_url()`; and whether it is that last one, the stack
    `june up` serves on this machine."""
    if given:
        return given, False
    from bots.settings import BotSettings

    bot = BotSettings()
    if "base_url" in bot.model_fields_set:
        return bot.base_url, False
    return gateway_url(), True
