"""Each bot's small HTTP side door: ``GET /health`` and ``GET /metrics`` (Prometheus), on aiohttp.

aiohttp comes with both aiogram and nextcord; the Telegram webhook mode mounts its handler on the
same application. Metrics live in a per-bot `CollectorRegistry` (no process-global state), so
tests and several bots in one process never collide.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from core.observability import new_registry

Outcome = Literal["reply", "error", "refused"]
"""How a message ended: "reply", "error" (an apology), "refused" (rate limit, allow-list, too long)."""


@dataclass
class BotMetrics:
    """Counters for one bot. ``june_bot_messages_total{bot, kind, outcome}``, latency histogram in seconds."""

    bot: str
    registry: CollectorRegistry
    messages: Counter
    latency: Histogram
    started: float

    def count(self, kind: str, outcome: Outcome, seconds: float | None = None) -> None:
        """Count one finished message of `kind` ("voice", "text", "command") with its `outcome`."""
        self.messages.labels(self.bot, kind, outcome).inc()
        if seconds is not None:
            self.latency.labels(self.bot, kind, outcome).observe(seconds)

    def value(self, kind: str, outcome: Outcome) -> float:
        """Current count (for /status and tests)."""
        got = self.registry.get_sample_value(
            "june_bot_messages_total", {"bot": self.bot, "kind": kind, "outcome": outcome}
        )
        return got or 0.0


def create_metrics(bot: str) -> BotMetrics:
    """Fresh metrics for `bot` ("telegram", "discord") in their own registry (one per bot app: the
    policy of `core.observability.new_registry`), served on the bot's /metrics."""
    registry = new_registry()
    labels = ["bot", "kind", "outcome"]
    messages = Counter("june_bot_messages", "Messages handled, by how they ended.", labels, registry=registry)
    latency = Histogram(
        "june_bot_reply_seconds",
        "Seconds from receiving a message to sending its reply.",
        labels,
        registry=registry,
        buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
    )
    return BotMetrics(bot, registry, messages, latency, time.monotonic())


def create_status_app(metrics: BotMetrics) -> web.Application:
    """aiohttp app with ``/health`` → ``{"status": "ok", "bot", "uptime_s"}`` and ``/metrics``."""

    async def health(request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "bot": metrics.bot, "uptime_s": round(time.monotonic() - metrics.started, 1)}
        )

    async def prometheus(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", prometheus)
    return app


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve `app` on host:port in the running loop; call ``await runner.cleanup()`` to stop."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
