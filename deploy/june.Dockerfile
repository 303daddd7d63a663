# syntax=docker/dockerfile:1
# june's Python services, one target each; EXTRAS picks the optional dependencies (pyproject.toml).
#   docker build -f deploy/june.Dockerfile --target gateway --build-arg EXTRAS="--extra realtime" -t june-gateway .
#   docker build -f deploy/june.Dockerfile --target speech  --build-arg EXTRAS="--extra speech" -t june-speech .
#   docker build -f deploy/june.Dockerfile --target telegram-bot --build-arg EXTRAS="--extra bots" -t june-telegram-bot .
# Speech on a GPU: EXTRAS="--extra speech --extra speech-torch" (torch brings the CUDA libraries
# faster-whisper needs), then JUNE_SPEECH_DEVICE=cuda (see deploy/compose.speech-gpu.yaml).

# ---- build: uv resolves from uv.lock into /app/.venv; compilers and caches stay in this stage ----
FROM python:3.11-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.8 /uv /usr/local/bin/uv
ARG EXTRAS="--extra realtime"
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Dependencies first (cached while only june's code changes), then june itself, not editable.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups --no-install-project ${EXTRAS}
COPY june ./june
COPY speech ./speech
COPY gateway ./gateway
COPY bots ./bots
COPY benchmarks ./benchmarks
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups --no-editable ${EXTRAS}

# ---- runtime: the venv and a non-root user; no uv, no compilers, no sources ----
FROM python:3.11-slim-bookworm AS runtime
RUN useradd --create-home --uid 10001 --user-group june \
    && mkdir -p /cache \
    && chown june:june /cache
COPY --from=build --chown=june:june /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 JUNE_LOG_JSON=true XDG_CACHE_HOME=/cache
WORKDIR /home/june
USER 10001:10001

FROM runtime AS speech
ENV JUNE_SPEECH_HOST=0.0.0.0 JUNE_SPEECH_PORT=8001
EXPOSE 8001
# Models are assembled from the installed packages into /cache on first start (~30 s).
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['JUNE_SPEECH_PORT'], timeout=4)"]
CMD ["python", "-m", "speech"]

FROM runtime AS gateway
ENV JUNE_GATEWAY_HOST=0.0.0.0 JUNE_GATEWAY_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['JUNE_GATEWAY_PORT'], timeout=4)"]
CMD ["python", "-m", "gateway"]

# The bots serve /health and /metrics (and Telegram's webhook) on a small side port.
FROM runtime AS telegram-bot
ENV JUNE_TELEGRAM_HOST=0.0.0.0 JUNE_TELEGRAM_PORT=8081
EXPOSE 8081
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['JUNE_TELEGRAM_PORT'], timeout=4)"]
CMD ["python", "-m", "bots.telegram"]

FROM runtime AS discord-bot
ENV JUNE_DISCORD_HOST=0.0.0.0 JUNE_DISCORD_PORT=8082
EXPOSE 8082
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['JUNE_DISCORD_PORT'], timeout=4)"]
CMD ["python", "-m", "bots.discord"]
