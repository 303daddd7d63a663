# One image for june's Python services; SERVICE picks the module (speech, gateway, bots.telegram).
# Build: docker build -f deploy/june.Dockerfile --build-arg EXTRAS="--extra speech" -t june-speech .
FROM python:3.11-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.8 /uv /usr/local/bin/uv
ARG EXTRAS="--extra speech --extra gateway --extra bots"
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-default-groups --no-install-project ${EXTRAS}
COPY june ./june
COPY speech ./speech
COPY gateway ./gateway
COPY bots ./bots
COPY benchmarks ./benchmarks
RUN uv sync --frozen --no-default-groups --no-editable ${EXTRAS}

FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 june
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1
USER june
ARG SERVICE=gateway
ENV SERVICE=${SERVICE}
CMD ["sh", "-c", "exec python -m ${SERVICE}"]
