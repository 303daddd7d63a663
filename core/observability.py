"""Traces, metrics and logs for june's services: one helper, not a framework.

- Traces: an OpenTelemetry `TracerProvider` per service. Spans are exported over OTLP/HTTP when
  `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set, to a given exporter in tests,
  and otherwise not recorded at all (`Telemetry.recording` is False): request paths then make no
  spans, a caller's W3C `traceparent` passes through unchanged, and logs carry the caller's trace id.
- httpx clients are instrumented one by one (`Telemetry.instrument`), and the gateway's aiohttp
  upstream sessions by OpenTelemetry's aiohttp-client hooks, so a trace spans
  client → gateway → vLLM / speech.
- Server spans: a small Litestar middleware (`Telemetry.server_spans`), one SERVER span per request.
- Metrics: Prometheus. One `CollectorRegistry` per app instance, made in the service's app factory
  and passed down to everything that defines metrics (`new_registry`); `/metrics` serves that
  registry. Nothing registers in prometheus_client's process-wide default registry, so two apps in
  one process (tests, a bench) neither share counts nor collide on names.
- Logs: one JSON object per line with `trace_id`/`span_id` of the current span.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from opentelemetry import context, propagate, trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from litestar.types import ASGIApp

_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})


class TelemetrySettings(BaseSettings):
    """Logging shared by every june service (JUNE_LOG_JSON, JUNE_LOG_LEVEL); trace export uses the OTEL_* variables."""

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
    recording: bool = True
    """Whether spans go anywhere (an exporter or an OTLP endpoint). When not, hot request paths skip
    making spans at all (see `server_spans`); tracers still work, making unrecorded spans."""

    def tracer(self, name: str) -> trace.Tracer:
        """A tracer for spans of our own (e.g. "speech.transcribe")."""
        return self.tracer_provider.get_tracer(name)

    def instrument(self, client: httpx.AsyncClient | httpx.Client) -> httpx.AsyncClient | httpx.Client:
        """Trace `client`'s requests and inject W3C `traceparent` into them; returns `client`."""
        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=self.tracer_provider)
        return client

    def server_spans(
        self, exclude: Collection[str] = ("/health", "/metrics", "/ready")
    ) -> Callable[[ASGIApp], ASGIApp]:
        """Litestar middleware: a SERVER span per HTTP request, continuing an incoming W3C `traceparent`.

        Pass it in `Litestar(middleware=[...])`. The span is named "{method} {route template}"
        and carries http.method, http.route, http.target and http.status_code (the status the
        route's exception handlers chose, errors included); a 5xx marks it as an error. Routes
        whose template is in `exclude` get no span.

        Why not OpenTelemetry's ASGI instrumentation (Litestar's OpenTelemetryPlugin): it decodes
        every header into attributes and re-enters the tracer on each ASGI message, about 0.3 ms
        per proxied request, a third of the gateway's whole budget (issue 4). This is the part of
        it june uses; spans still go through the OpenTelemetry SDK and its exporters.

        When not `recording`, no span is made (about 50 µs saved per request): a request's incoming
        `traceparent`, if any, only becomes the current context, so logs carry the caller's trace id
        and spans made inside are its children.
        """
        if not self.recording:
            return _continue_trace
        tracer = self.tracer("june.server")
        skip = frozenset(exclude)

        def middleware(app: ASGIApp) -> ASGIApp:
            async def traced(scope: Any, receive: Any, send: Any) -> None:
                route = (scope.get("path_template") or scope["path"]) if scope["type"] == "http" else None
                if route is None or route in skip:
                    await app(scope, receive, send)
                    return
                parent = _callers_context(scope)
                method = scope["method"]
                status = 0

                async def send_status(message: Any) -> None:
                    nonlocal status
                    if message["type"] == "http.response.start":
                        status = message["status"]
                    await send(message)

                target = scope.get("raw_path") or scope["path"].encode()
                with tracer.start_as_current_span(
                    f"{method} {route}",
                    context=parent,
                    kind=SpanKind.SERVER,
                    attributes={"http.method": method, "http.route": route, "http.target": target.decode("latin-1")},
                ) as span:
                    try:
                        await app(scope, receive, send_status)
                    finally:
                        if status:
                            span.set_attribute("http.status_code", status)
                            if status >= 500:
                                span.set_status(StatusCode.ERROR)

            return traced

        return middleware

    def litestar_metrics(self, registry: CollectorRegistry | None = None) -> tuple[Callable[[ASGIApp], ASGIApp], Any]:
        """(middleware, `GET /metrics` handler) for a Litestar app whose metrics live in `registry`.

        `registry`: the app's own (see `new_registry`); default: a new one. The middleware counts
        HTTP requests in it (`HttpMetrics`); the handler serves all of it, the app's other metrics included.
        """
        registry = registry if registry is not None else new_registry()
        return HttpMetrics(registry, self.service, prefix="june_http").middleware, metrics_handler(registry)

    def shutdown(self) -> None:
        """Flush and stop span export."""
        self.tracer_provider.shutdown()


def new_registry() -> CollectorRegistry:
    """A registry for one app instance (the one policy: an app factory makes one and passes it down),
    with prometheus-client's process, platform and GC collectors (`process_resident_memory_bytes`, …)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def metrics_handler(registry: CollectorRegistry, path: str = "/metrics") -> Any:
    """A Litestar ``GET /metrics`` handler serving `registry` in Prometheus' text format."""
    from litestar import Response, get

    @get(path, sync_to_thread=False, include_in_schema=False, signature_namespace={"Response": Response})
    def metrics() -> Response[bytes]:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics


class HttpMetrics:
    """Request metrics of one app, in its `registry`: what Litestar's PrometheusMiddleware records
    (same names and labels, so dashboards are unchanged), without its process-wide registry.

    `{prefix}_requests_total`, `{prefix}_request_duration_seconds` (histogram),
    `{prefix}_requests_in_progress`, `{prefix}_requests_error_total` (5xx); labels method, path (the
    route template, so made-up paths cannot grow the label set), status_code, app_name (`app`).
    Paths in `exclude` are not counted.
    """

    def __init__(
        self, registry: CollectorRegistry, app: str, *, prefix: str, exclude: Collection[str] = ("/metrics",)
    ) -> None:
        labels = ["method", "path", "status_code", "app_name"]
        self.app, self.exclude = app, frozenset(exclude)
        self.requests = Counter(f"{prefix}_requests", "Total requests", labels, registry=registry)
        self.duration = Histogram(
            f"{prefix}_request_duration_seconds", "Request duration, in seconds", labels, registry=registry
        )
        self.in_progress = Gauge(
            f"{prefix}_requests_in_progress", "Total requests currently in progress", labels, registry=registry
        )
        self.errors = Counter(f"{prefix}_requests_error", "Total errors in requests", labels, registry=registry)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Litestar middleware (pass it in `Litestar(middleware=[...])`) counting HTTP requests."""

        async def counted(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope["path"] in self.exclude:
                await app(scope, receive, send)
                return
            method, path = scope["method"], scope.get("path_template") or scope["path"]
            status = 200
            start = time.perf_counter()

            async def send_status(message: Any) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            self.in_progress.labels(method, path, "200", self.app).inc()
            try:
                await app(scope, receive, send_status)
            finally:
                self.in_progress.labels(method, path, "200", self.app).dec()
                labels = (method, path, str(status), self.app)
                if status >= 500:
                    self.errors.labels(*labels).inc()
                self.requests.labels(*labels).inc()
                self.duration.labels(*labels).observe(time.perf_counter() - start)

        return counted


def _callers_context(scope: Any) -> context.Context | None:
    """The trace context an HTTP request's W3C `traceparent`/`tracestate` headers carry; None without them."""
    carrier = {
        name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"] if name in _TRACE_HEADERS
    }
    return propagate.extract(carrier) if carrier else None


def _continue_trace(app: ASGIApp) -> ASGIApp:
    """Middleware for when nothing is recorded: an HTTP request's W3C `traceparent` (and
    `tracestate`) become the current context while the request runs; a request without one is
    left alone."""

    async def continued(scope: Any, receive: Any, send: Any) -> None:
        parent = _callers_context(scope) if scope["type"] == "http" else None
        if parent is None:
            await app(scope, receive, send)
            return
        token = context.attach(parent)
        try:
            await app(scope, receive, send)
        finally:
            context.detach(token)

    return continued


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: int = logging.INFO) -> None:
    """Plain-text logging for a service's `main()` (`time LEVEL logger: message` on stderr); `setup`
    switches the root logger to JSON lines instead when JUNE_LOG_JSON is on."""
    logging.basicConfig(level=level, format=LOG_FORMAT)


def setup(service: str, *, exporter: SpanExporter | None = None, json_logs: bool | None = None) -> Telemetry:
    """Telemetry for `service` ("speech", "gateway", "telegram", …).

    `exporter` (tests: an InMemorySpanExporter) gets every span synchronously; without one, spans
    go to OTLP when the standard OTEL_EXPORTER_OTLP_* variables name an endpoint, sampled as
    OTEL_TRACES_SAMPLER says (default: parent-based, always on). With nowhere to send spans, none
    is recorded (sampler ALWAYS_OFF, `Telemetry.recording` False): the server middleware and the
    gateway then make no spans per request (a caller's traceparent passes through as it came),
    and the spans other code makes are unrecorded but get ids, so their logs carry trace ids and
    instrumented httpx clients still send traceparent (marked not sampled).
    `json_logs` (default: env JUNE_LOG_JSON, off) switches the root logger to JSON lines.
    """
    resource = Resource.create({"service.name": f"june-{service}"})
    otlp = bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    if exporter is None and not otlp:
        provider = TracerProvider(resource=resource, sampler=ALWAYS_OFF)
    else:
        provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif otlp:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    log = TelemetrySettings()
    if json_logs is None:
        json_logs = log.log_json
    if json_logs:
        configure_json_logging(service, logging.getLevelName(log.log_level.upper()))
    # httpx logs every request at INFO: health checks and proxied calls would drown the service's own logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return Telemetry(service, provider, recording=exporter is not None or otlp)


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
