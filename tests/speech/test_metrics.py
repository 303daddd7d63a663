"""Metrics belong to one app: two speech apps in one process neither share counts nor collide."""

from __future__ import annotations

import re

import pytest
from litestar.testing import TestClient

from core import observability
from speech.app import create_app
from speech.scheduler import Busy
from speech.settings import SpeechSettings


def sample(text: str, line: str) -> float | None:
    """The value of the exposition line that starts with `line` (name and labels), or None."""
    m = re.search(rf"^{re.escape(line)} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_two_speech_apps_in_one_process_keep_their_own_metrics():
    # No lifespan (no `with`): no model is loaded; the routes below need none.
    one = create_app(
        SpeechSettings(max_concurrency=1, max_queue=0), telemetry=observability.setup("speech", json_logs=False)
    )
    two = create_app(
        SpeechSettings(max_concurrency=3, max_queue=0), telemetry=observability.setup("speech", json_logs=False)
    )
    held = one.state.engines.admit()
    with pytest.raises(Busy):
        one.state.engines.admit()  # the queue of app one is full: counted as rejected there only
    held.release()
    a, b = TestClient(one), TestClient(two)
    for _ in range(3):
        assert a.get("/health").status_code == 200
    assert b.get("/health").status_code == 200

    text_a, text_b = a.get("/metrics").text, b.get("/metrics").text
    health = 'june_http_requests_total{app_name="speech",method="GET",path="/health",status_code="200"}'
    assert (sample(text_a, health), sample(text_b, health)) == (3.0, 1.0)
    assert (sample(text_a, "june_speech_slots"), sample(text_b, "june_speech_slots")) == (1.0, 3.0)
    rejected = 'june_speech_rejected_total{class="interactive"}'
    assert (sample(text_a, rejected), sample(text_b, rejected)) == (1.0, None)
    for text in (text_a, text_b):  # every name once per exposition, process metrics included
        names = re.findall(r"^# TYPE (\S+)", text, re.M)
        assert len(names) == len(set(names)) and "process_resident_memory_bytes" in names
