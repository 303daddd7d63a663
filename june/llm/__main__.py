"""`python -m june.llm`: settings from JUNE_LLM_* → preflight → vLLM's OpenAI server."""

from __future__ import annotations

import sys

from core.observability import configure_logging
from june.llm.server import serve
from june.llm.settings import LLMSettings


def main() -> int:
    """Serve until vLLM exits; non-zero with a one-line reason when the preset cannot run here."""
    configure_logging()
    return serve(LLMSettings())


if __name__ == "__main__":
    sys.exit(main())
