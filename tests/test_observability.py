"""core.observability: JSON logs carry the trace, one trace spans client → Litestar → httpx → Litestar,
spans reach an OTLP endpoint when one is configured, and request metrics are served."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import httpx
import pytest
import uvicorn
from litestar import Litestar, Request, get
from litestar.params import FromPath
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from core import observability
from core.web import OpenAIError, exception_handlers
from tests.conftest import free_port


@contextmanager
def serve_in_thread(app: Litestar) -> Iterator[str]:
    """`app` under uvicorn on a free port in a daemon thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_json_log_lines_carry_the_current_trace_id():
    telemetry = observability.setup("test", exporter=InMemorySpanExporter(), json_logs=False)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(observability.JsonFormatter("test"))
    log = logging.getLogger("june.test.json")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with telemetry.tracer("t").start_as_current_span("work") as span:
            log.info("inside %s", "a span")
        log.warning("outside")
    finally:
        log.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    ctx = span.get_span_context()
    assert inside["message"] == "inside a span" and inside["service"] == "test" and inside["level"] == "info"
    assert inside["trace_id"] == f"{ctx.trace_id:032x}" and inside["span_id"] == f"{ctx.span_id:016x}"
    assert "trace_id" not in outside and outside["level"] == "warning"


def test_without_an_exporter_spans_are_not_recorded_but_ids_still_propagate(monkeypatch: pytest.MonkeyPatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    telemetry = observability.setup("quiet", json_logs=False)
    assert not telemetry.recording
    incoming = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    with telemetry.tracer("t").start_as_current_span("work", context=propagate.extract(incoming)) as span:
        outgoing: dict[str, str] = {}
        propagate.inject(outgoing)
    ctx = span.get_span_context()
    assert not span.is_recording()
    assert ctx.trace_id == 0x0AF7651916CD43DD8448EB211C80319C and ctx.span_id not in (0, 0xB7AD6B7169203331)
    assert outgoing["traceparent"] == f"00-0af7651916cd43dd8448eb211c80319c-{ctx.span_id:016x}-00"


def test_server_spans_name_the_route_and_keep_the_status_errors_included():
    exporter = InMemorySpanExporter()
    tel = observability.setup("spans", exporter=exporter, json_logs=False)

    @get("/items/{item_id:int}")
    async def item(item_id: FromPath[int]) -> dict:
        if item_id == 0:
            raise OpenAIError(502, "upstream gone")
        return {"id": item_id}

    @get("/health")
    async def health() -> dict:
        return {}

    with serve_in_thread(
        Litestar([item, health], middleware=[tel.server_spans()], exception_handlers=exception_handlers)
    ) as url:
        assert httpx.get(f"{url}/items/7").status_code == 200
        assert httpx.get(f"{url}/items/0").status_code == 502
        assert httpx.get(f"{url}/health").status_code == 200
    ok, failed = exporter.get_finished_spans()  # /health has none
    assert (ok.name, ok.kind, ok.attributes["http.route"], ok.attributes["http.target"]) == (
        "GET /items/{item_id}",
        SpanKind.SERVER,
        "/items/{item_id}",
        "/items/7",
    )
    assert ok.attributes["http.status_code"] == 200 and ok.status.status_code == StatusCode.UNSET
    assert failed.attributes["http.status_code"] == 502 and failed.status.status_code == StatusCode.ERROR


def test_with_nothing_recorded_requests_get_no_span_but_continue_the_callers_trace(monkeypatch: pytest.MonkeyPatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    tel = observability.setup("quiet", json_logs=False)

    @get("/where")
    async def where() -> dict:
        ctx = trace.get_current_span().get_span_context()
        return {
            "valid": ctx.is_valid,
            "trace_id": f"{ctx.trace_id:032x}",
            "span_id": f"{ctx.span_id:016x}",
            "remote": ctx.is_remote,
        }

    with serve_in_thread(Litestar([where], middleware=[tel.server_spans()])) as url:
        traced = httpx.get(
            f"{url}/where", headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
        ).json()
        plain = httpx.get(f"{url}/where").json()
    # The caller's own span is current (logs carry its trace id); the service minted none of its own.
    assert traced == {
        "valid": True,
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": "b7ad6b7169203331",
        "remote": True,
    }
    assert plain["valid"] is False


def test_one_trace_from_client_through_two_services():
    exporter = InMemorySpanExporter()
    back_tel = observability.setup("back", exporter=exporter, json_logs=False)
    front_tel = observability.setup("front", exporter=exporter, json_logs=False)

    @get("/echo")
    async def echo(request: Request) -> dict:
        return {"traceparent": request.headers.get("traceparent")}

    back = Litestar([echo], middleware=[back_tel.server_spans()])
    with serve_in_thread(back) as back_url:

        @get("/relay")
        async def relay(request: Request) -> dict:
            r = await request.app.state.http.get(f"{back_url}/echo")
            return {"received": request.headers.get("traceparent"), "back": r.json()}

        async def open_client(app: Litestar) -> None:
            app.state.http = front_tel.instrument(httpx.AsyncClient())

        async def close_client(app: Litestar) -> None:
            await app.state.http.aclose()

        front = Litestar(
            [relay], middleware=[front_tel.server_spans()], on_startup=[open_client], on_shutdown=[close_client]
        )
        with serve_in_thread(front) as front_url:
            caller = observability.setup("caller", exporter=exporter, json_logs=False)
            with caller.instrument(httpx.Client()) as client:
                body = client.get(f"{front_url}/relay").json()

    spans = exporter.get_finished_spans()
    trace_ids = {s.context.trace_id for s in spans}
    assert len(trace_ids) == 1, [(s.name, s.resource.attributes["service.name"]) for s in spans]
    by_service = {}
    for s in spans:
        by_service.setdefault((s.resource.attributes["service.name"], s.kind), []).append(s)
    (caller_span,) = by_service[("june-caller", SpanKind.CLIENT)]
    (front_server,) = by_service[("june-front", SpanKind.SERVER)]
    (front_client,) = by_service[("june-front", SpanKind.CLIENT)]
    (back_server,) = by_service[("june-back", SpanKind.SERVER)]
    assert front_server.parent.span_id == caller_span.context.span_id
    assert back_server.parent.span_id == front_client.context.span_id
    # W3C traceparent on the wire: 00-<trace id>-<parent span id>-<flags, sampled bit set>
    trace_hex = f"{caller_span.context.trace_id:032x}"
    for header, parent in ((body["received"], caller_span), (body["back"]["traceparent"], front_client)):
        version, trace_id, span_id, flags = header.split("-")
        assert (version, trace_id, span_id) == ("00", trace_hex, f"{parent.context.span_id:016x}")
        assert int(flags, 16) & 1


class _OtlpReceiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[tuple[str, bytes]]] = []  # shared: the server makes a handler per request

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_spans_go_to_the_otlp_endpoint_when_one_is_set(monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), _OtlpReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        telemetry = observability.setup("otlp-test", json_logs=False)
        with telemetry.tracer("t").start_as_current_span("exported-span"):
            pass
        telemetry.shutdown()  # flushes the batch
    finally:
        server.shutdown()
        server.server_close()
    paths = [p for p, _ in _OtlpReceiver.bodies]
    assert paths == ["/v1/traces"]
    assert b"exported-span" in _OtlpReceiver.bodies[0][1] and b"june-otlp-test" in _OtlpReceiver.bodies[0][1]


def test_without_an_endpoint_nothing_is_exported(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    telemetry = observability.setup("quiet", json_logs=False)
    with telemetry.tracer("t").start_as_current_span("dropped") as span:
        assert span.get_span_context().is_valid  # ids still exist for logs and traceparent
    assert telemetry.tracer_provider._active_span_processor._span_processors == ()


def test_request_metrics_are_served():
    middleware, controller = observability.setup("metrics-test", json_logs=False).litestar_metrics()

    @get("/hello")
    async def hello() -> str:
        return "hi"

    app = Litestar([hello, controller], middleware=[middleware])
    with serve_in_thread(app) as url:
        assert httpx.get(f"{url}/hello").status_code == 200
        text = httpx.get(f"{url}/metrics").text
    line = next(
        row
        for row in text.splitlines()
        if row.startswith("june_http_requests_total{") and 'app_name="metrics-test"' in row
    )
    assert 'path="/hello"' in line and 'status_code="200"' in line and line.endswith(" 1.0")


@pytest.mark.parametrize(("value", "expected"), [("true", None), ("", "default")])
def test_uvicorn_log_config_follows_json_logs(monkeypatch, value, expected):
    monkeypatch.setenv("JUNE_LOG_JSON", value) if value else monkeypatch.delenv("JUNE_LOG_JSON", raising=False)
    config = observability.uvicorn_log_config()
    assert (config is None) == (expected is None)
