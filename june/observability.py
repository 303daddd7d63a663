"""Traces, metrics and logs for june's services: one helper, not a framework.

- Traces: an OpenTelemetry `TracerProvider` per service. Spans are exported over OTLP/HTTP when
  `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set, to a given exporter in tests,
  and otherwise dropped (trace ids still exist, so logs and W3C `traceparent` propagate).
- httpx clients are instrumented one by one (`Telemetry.instrument`), so a trace spans
  client → gateway → vLLM / speech.
- Metrics: Prometheus, via Litestar's middleware and a `/metrics` controller; services define
  their own counters/histograms with `prometheus_client`.
- Logs: one JSON object per line with `trace_id`/`span_id` of the current span.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from pydantic_settings import BaseSettings, SettingsConfigDict


class TelemetrySettings(BaseSettings):
    """Logging shared by every june service (JUNE_LOG_JSON, JUNE_LOG_LEVEL); trace export uses the standard OTEL_* variables."""

    model_config = SettingsConfigDict(env_prefix="JUNE_", extra="ignore")

    log_json: bool = False
    """Write logs as one JSON object per line with trace_id/span_id (JUNE_LOG_JSON); off: plain text."""
    log_level: str = "INFO"
    """Root log level when JSON logs are on: DEBUG, INFO, WARNING or ERROR (JUNE_LOG_LEVEL)."""


@dataclass
class Telemetry:
    """A service's tracer provider and the helpers that use it."""

    service: str
    tracer_provider: TracerProvider

    def tracer(self, name: str) -> trace.Tracer:
        """A tracer for spans of our own (e.g. "speech.transcribe")."""
        return self.tracer_provider.get_tracer(name)

    def instrument(self, client: httpx.AsyncClient | httpx.Client) -> httpx.AsyncClient | httpx.Client:
        """Trace `client`'s requests and inject W3C `traceparent` into them; returns `client`."""
        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=self.tracer_provider)
        return client

    def litestar_plugins(self) -> list[Any]:
        """Litestar plugins: a server span per request, continuing an incoming `traceparent`.

        No span per ASGI receive/send message: a streamed response sends one message per chunk,
        and those spans would cost more than the work they describe.
        """
        from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

        config = OpenTelemetryConfig(
            tracer_provider=self.tracer_provider,
            exclude=["/health", "/metrics", "/ready"],
            exclude_spans=["receive", "send"],
        )
        return [OpenTelemetryPlugin(config)]

    def litestar_metrics(self) -> tuple[Any, type]:
        """(middleware, controller) for Litestar: request count/latency metrics and `GET /metrics`.

        Every service shares the metric names and tells itself apart by the `app_name` label:
        `june_http_requests_total`, `june_http_request_duration_seconds` (histogram),
        `june_http_requests_in_progress`, `june_http_requests_error_total`; labels app_name, method,
        path, status_code. The controller serves prometheus_client's default registry.
        """
        from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

        config = PrometheusConfig(app_name=self.service, prefix="june_http", group_path=True, exclude=["/metrics"])
        return config.middleware, PrometheusController

    def shutdown(self) -> None:
        """Flush and stop span export."""
        self.tracer_provider.shutdown()


def setup(service: str, *, exporter: SpanExporter | None = None, json_logs: bool | None = None) -> Telemetry:
    """Telemetry for `service` ("speech", "gateway", "telegram", …).

    `exporter` (tests: an InMemorySpanExporter) gets every span synchronously; without one, spans
    go to OTLP when the standard OTEL_EXPORTER_OTLP_* variables name an endpoint. `json_logs`
    (default: env JUNE_LOG_JSON, off) switches the root logger to JSON lines.
    """
    provider = TracerProvider(resource=Resource.create({"service.name": f"june-{service}"}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    log = TelemetrySettings()
    if json_logs is None:
        json_logs = log.log_json
    if json_logs:
        configure_json_logging(service, logging.getLevelName(log.log_level.upper()))
    # httpx logs every request at INFO: health checks and proxied calls would drown the service's own logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return Telemetry(service, provider)


def uvicorn_log_config() -> dict[str, Any] | None:
    """`log_config` for `uvicorn.run`: None with JSON logs on (uvicorn's loggers then propagate to
    the root JSON handler instead of printing plain text), else uvicorn's own default."""
    if TelemetrySettings().log_json:
        return None
    from uvicorn.config import LOGGING_CONFIG

    return LOGGING_CONFIG


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, service, trace_id, span_id."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        ctx = trace.get_current_span().get_span_context()
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        if ctx.is_valid:
            entry["trace_id"] = f"{ctx.trace_id:032x}"
            entry["span_id"] = f"{ctx.span_id:016x}"
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_json_logging(service: str, level: int = logging.INFO) -> None:
    """Send the root logger's records to stderr as JSON lines (replacing its handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
