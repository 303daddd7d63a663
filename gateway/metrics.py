"""The gateway's Prometheus metrics (prometheus-client), in a registry per app (tests run several apps).

Labels: `key` is the key's id ("key-1a2b3c4d", or "anonymous"), never the key; `model` is the
request's model when the upstream accepted it (status < 400), else "-" (a client cannot grow the
label set by sending made-up model names); `route` is the /v1 path; `class` is the request class
(live, interactive, batch: `core.priority`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Latency buckets (s): sub-millisecond for a stub, up to minutes for long generations.
_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class GatewayMetrics:
    """Counters and histograms of one gateway, registered in `registry` (a new one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "june_gateway_requests", "Requests answered, by key, model, route and HTTP status.",
            ["key", "model", "route", "status"], registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "june_gateway_errors", "Requests that ended in an error (4xx/5xx, or an upstream that broke off), by code.",
            ["key", "model", "route", "code"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "june_gateway_request_seconds", "Seconds from request to the end of the response body.",
            ["key", "model", "route"], buckets=_LATENCY, registry=r,
        )  # fmt: skip
        self.ttft = Histogram(
            "june_gateway_time_to_first_token_seconds",
            "Seconds from request to the first streamed chunk (SSE responses).",
            ["key", "model"], buckets=_LATENCY, registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "june_gateway_tokens", "Tokens reported by the upstream's usage, by kind (prompt, completion).",
            ["key", "model", "kind"], registry=r,
        )  # fmt: skip
        self.upstream_up = Gauge(
            "june_gateway_upstream_up", "1 when the upstream server passed its last health check.",
            ["upstream", "url"], registry=r,
        )  # fmt: skip
        self.inflight = Gauge(
            "june_gateway_upstream_inflight",
            "Requests in flight to each upstream server.",
            ["upstream", "url"],
            registry=r,
        )
        self.class_wait = Histogram(
            "june_gateway_class_queue_seconds",
            "Seconds a request waited in the gateway's admission before going upstream, by request class.",
            ["class"], buckets=_LATENCY, registry=r,
        )  # fmt: skip
        self.class_service = Histogram(
            "june_gateway_class_service_seconds",
            "Seconds from admission to the end of the response, by request class.",
            ["class"], buckets=_LATENCY, registry=r,
        )  # fmt: skip
        self.class_admitted = Counter(
            "june_gateway_class_admitted", "Requests admitted to an upstream, by request class.", ["class"], registry=r
        )
        self.class_refused = Counter(
            "june_gateway_class_refused",
            "Requests refused by admission (503 server_busy: the class's queue was full), by request class.",
            ["class"], registry=r,
        )  # fmt: skip

    def error(self, key: str, model: str, route: str, status: int, code: str | None) -> None:
        """Count a request refused or failed before a response body was relayed."""
        self.requests.labels(key, model, route, str(status)).inc()
        self.errors.labels(key, model, route, code or str(status)).inc()
