"""`python -m speech`: settings from the environment (JUNE_SPEECH_*) → create_app → uvicorn.

Exits with code 3 when a model to preload failed to load (the log and /ready say which and why).
"""

from __future__ import annotations

import signal

from core.observability import configure_logging
from core.web import serve
from speech.app import create_app
from speech.settings import SpeechSettings


def main() -> None:
    configure_logging()
    settings = SpeechSettings()
    app = create_app(settings)

    def stopped(signum: int, _: object) -> None:
        # uvicorn re-raises the SIGTERM/SIGINT that stopped it once it has shut down.
        raise SystemExit(3 if app.state.engines.preload_failures else 128 + signum)

    signal.signal(signal.SIGTERM, stopped)
    serve(app, settings.host, settings.port)


if __name__ == "__main__":
    main()
