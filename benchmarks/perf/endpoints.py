"""Where the stack benchmarks find the stack: by default, where `june up` serves it on this machine.

`june up` (june.stack.plan) serves the gateway at its settings' host and port (``JUNE_GATEWAY_HOST``,
``JUNE_GATEWAY_PORT``; http://127.0.0.1:8000 by default). The benchmarks read the same settings,
so that `june up` in one terminal and `june bench …` in another meet without options.
"""

from __future__ import annotations

from core.procs import local_url


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
