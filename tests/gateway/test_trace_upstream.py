"""OpenTelemetry's CLIENT span per upstream call (aiohttp instrumentation): one W3C traceparent
reaches the upstream, naming it; with traces going nowhere, the client's traceparent passes through as it came."""

from __future__ import annotations

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from core.observability import setup
from gateway.app import create_app
from tests.gateway.conftest import gateway_settings, serve_in_thread
from tests.gateway.stub_upstream import StubUpstream

CLIENT_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_upstream_gets_one_traceparent_from_the_gateway_client_span(stub_url: str, stub: StubUpstream) -> None:
    exporter = InMemorySpanExporter()
    app = create_app(gateway_settings(stub_url), telemetry=setup("gateway", exporter=exporter))
    with serve_in_thread(app) as url:
        r = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "m", "messages": []},
            headers={"traceparent": CLIENT_TRACE},
            trust_env=False,
        )
    assert r.status_code == 200
    (seen,) = stub.seen
    sent = [v for k, v in seen.headers if k == "traceparent"]
    assert len(sent) == 1, sent  # the client's own traceparent is replaced, not duplicated
    (client_span,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT]
    (server_span,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert sent[0] == f"00-{client_span.context.trace_id:032x}-{client_span.context.span_id:016x}-01"
    assert client_span.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert client_span.parent.span_id == server_span.context.span_id
    assert server_span.parent.span_id == 0xB7AD6B7169203331
    assert client_span.attributes["http.method"] == "POST"
    assert client_span.attributes["http.status_code"] == 200
    assert client_span.attributes["http.url"].endswith("/v1/chat/completions")
    assert server_span.attributes["june.request_class"] == "interactive"  # the class shows in the trace


def test_with_traces_off_the_client_traceparent_passes_through_unchanged(
    stub_url: str, stub: StubUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    telemetry = setup("gateway")
    assert not telemetry.recording
    with serve_in_thread(create_app(gateway_settings(stub_url), telemetry=telemetry)) as url:
        for headers in ({"traceparent": CLIENT_TRACE, "tracestate": "vendor=1"}, {}):
            r = httpx.post(
                f"{url}/v1/chat/completions", json={"model": "m", "messages": []}, headers=headers, trust_env=False
            )
            assert r.status_code == 200
    traced, plain = stub.seen
    assert [(k, v) for k, v in traced.headers if k in ("traceparent", "tracestate")] == [
        ("traceparent", CLIENT_TRACE),
        ("tracestate", "vendor=1"),
    ]
    assert plain.header("traceparent") is None  # no id minted for a request nobody traces
