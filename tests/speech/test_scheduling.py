"""Speech schedules whole requests: one holds its model slot from its first to its last segment,
waiting ones are served in arrival order, and one whose client has gone gives its place up.

Checked by order of events and by the service's own metrics, never by timing.
"""

from __future__ import annotations

import re
import threading
import time

import httpx
import numpy as np
import pytest

from core.audio import decode, encode
from tests.clips import espeak_wav

SENTENCE = "Please turn on the kitchen lights before dinner."


@pytest.fixture(scope="module")
def sentence(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    return decode(espeak_wav(SENTENCE, tmp_path_factory.mktemp("sched") / "s.wav").read_bytes(), 16000)


def spoken(sentence: np.ndarray, times: int) -> bytes:
    """`times` sayings of the sentence, 2.5 s apart: faster-whisper's VAD cuts them into separate
    windows, so Whisper yields one segment per saying, one model call each."""
    gap = np.zeros(int(2.5 * 16000), np.float32)
    return encode(np.concatenate([part for _ in range(times) for part in (sentence, gap)]), 16000, "wav")


def metric(http: httpx.Client, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", http.get("/metrics").text, re.M)
    return float(m.group(1)) if m else 0.0


def test_requests_are_served_whole_in_arrival_order(speech_url: str, sentence: np.ndarray) -> None:
    """With slots k, the (k+1)-th arrival gets its first segment only after an earlier one is done:
    requests do not share the CPU segment by segment (where all finish together, the first too)."""
    with httpx.Client(base_url=speech_url, timeout=300) as http:
        slots = http.get("/health").json()["slots"]
    clip = spoken(sentence, 2)
    events: list[tuple[int, str]] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        files = {"file": ("two.wav", clip)}
        fields = {"model": "tiny.en", "stream": "true"}
        with (
            httpx.Client(base_url=speech_url, timeout=300) as h,
            h.stream("POST", "/v1/audio/transcriptions", files=files, data=fields) as r,
        ):
            assert r.status_code == 200, r.read()
            for line in r.iter_lines():
                if kind := re.search(r'"type": "transcript\.text\.(delta|done)"', line):
                    with lock:
                        events.append((i, kind.group(1)))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(slots + 1)]
    for t in threads:
        t.start()
        time.sleep(0.3)  # arrival order 0, 1, …
    for t in threads:
        t.join(300)
    last = slots
    first_of_last = events.index((last, "delta"))
    assert any(kind == "done" for _, kind in events[:first_of_last]), events
    done_order = [i for i, kind in events if kind == "done"]
    assert done_order[-1] == last and sorted(done_order) == list(range(slots + 1)), events


def test_a_client_that_leaves_gives_up_its_queue_place_and_its_slot(speech_url: str, sentence: np.ndarray) -> None:
    """Clients that time out (one running, the rest queued) are dropped: the next request gets the
    slot after the current segment of the running one, and the queue is empty once it is served."""
    long_clip = spoken(sentence, 8)
    with httpx.Client(base_url=speech_url, timeout=300) as http:
        slots = http.get("/health").json()["slots"]
        queued_before = metric(http, 'june_speech_abandoned_total{stage="queued"}')
        running_before = metric(http, 'june_speech_abandoned_total{stage="running"}')

        def leaver(i: int) -> None:
            with httpx.Client(base_url=speech_url, timeout=1.5 + 0.2 * i) as h, pytest.raises(httpx.ReadTimeout):
                h.post("/v1/audio/transcriptions", files={"file": ("long.wav", long_clip)}, data={"model": "base"})

        leavers = [threading.Thread(target=leaver, args=(i,)) for i in range(slots + 2)]
        for t in leavers:
            t.start()
            time.sleep(0.1)
        for t in leavers:
            t.join(60)
        r = http.post(
            "/v1/audio/transcriptions", files={"file": ("one.wav", spoken(sentence, 1))}, data={"model": "tiny.en"}
        )
        assert r.status_code == 200 and "kitchen" in r.json()["text"].lower(), r.text
        # The leavers' places are gone: nothing admitted is left once this request is answered.
        assert metric(http, "june_speech_queue_depth") == 0.0
        # Every leaver was dropped, running or queued: the `slots` first ones while running; a queued
        # one may reach a slot freed by a leaver before its own time is up and leave from there.
        running = metric(http, 'june_speech_abandoned_total{stage="running"}') - running_before
        queued = metric(http, 'june_speech_abandoned_total{stage="queued"}') - queued_before
        assert running >= slots and running + queued == slots + 2, (running, queued)
