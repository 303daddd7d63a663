"""`python -m speech`: settings from the environment (JUNE_SPEECH_*) → create_app → uvicorn."""

from __future__ import annotations

from june.observability import configure_logging
from june.web import serve
from speech.app import create_app
from speech.settings import SpeechSettings


def main() -> None:
    configure_logging()
    settings = SpeechSettings()
    serve(create_app(settings), settings.host, settings.port)


if __name__ == "__main__":
    main()
