"""One trace across client → gateway → speech: W3C traceparent forwarded by the gateway's httpx client.

All three run in this process (the gateway and the real speech app under uvicorn threads), each with
its own tracer provider from `core.observability.setup`, all exporting into one in-memory exporter.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from core.observability import setup
from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from speech.app import create_app as create_speech
from speech.settings import SpeechSettings
from tests.gateway.conftest import serve_in_thread


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
def gateway(exporter: InMemorySpanExporter) -> Iterator[str]:
    speech = create_speech(SpeechSettings(preload=[]), telemetry=setup("speech", exporter=exporter))
    with serve_in_thread(speech) as speech_url:
        settings = GatewaySettings(llm_url=speech_url, speech_url=speech_url)
        with serve_in_thread(create_gateway(settings, telemetry=setup("gateway", exporter=exporter))) as url:
            yield url


def test_one_trace_from_client_through_gateway_to_speech(gateway: str, exporter: InMemorySpanExporter) -> None:
    client_telemetry = setup("client", exporter=exporter)
    with httpx.Client(timeout=120) as client:
        client_telemetry.instrument(client)
        with client_telemetry.tracer("test").start_as_current_span("user-action") as root:
            r = client.get(f"{gateway}/v1/audio/voices")
    assert r.status_code == 200, r.text
    trace_id = root.get_span_context().trace_id

    def finished() -> list:
        return [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]

    # Server spans end just after the last byte is sent (the client may have it already): wait for them.
    deadline = time.monotonic() + 10
    while sum(s.kind == SpanKind.SERVER for s in finished()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    spans = finished()
    services = {s.resource.attributes["service.name"] for s in spans}
    assert services == {"june-client", "june-gateway", "june-speech"}

    def one(service: str, kind: SpanKind) -> object:
        found = [s for s in spans if s.resource.attributes["service.name"] == service and s.kind == kind]
        assert found, f"no {kind.name} span from {service}: {[(s.name, s.kind) for s in spans]}"
        return found[0]

    gateway_server = one("june-gateway", SpanKind.SERVER)
    gateway_client = one("june-gateway", SpanKind.CLIENT)
    speech_server = one("june-speech", SpanKind.SERVER)
    # The chain: client span → gateway server span → gateway's upstream call → speech server span.
    assert gateway_server.parent.span_id == one("june-client", SpanKind.CLIENT).context.span_id
    assert speech_server.parent.span_id == gateway_client.context.span_id
