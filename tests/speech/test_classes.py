"""Request classes in the real speech service (X-June-Class): live work overtakes batch work, on its
own slot or at a segment / sentence boundary; batch work still finishes under steady interactive
load; each class has its own queue bound; non-live model calls run at a lower
priority, in the background worker process.

One service of its own (real Whisper and Piper): batch aging 2 s and 2 queue places per class, so
that aging and a full queue show within a test. Checked by order of events, transcripts, the
service's metrics and /proc, never by timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from core.audio import decode
from core.observability import setup
from core.procs import free_port
from speech.app import create_app
from speech.settings import SpeechSettings
from tests.clips import espeak_wav
from tests.conftest import run_service
from tests.gateway.conftest import serve_in_thread
from tests.speech.test_scheduling import SENTENCE, metric, spoken

LONG_TEXT = " ".join(f"This is sentence number {n} of a long answer about the kitchen lights." for n in range(1, 25))
# (key word, sentence): spoken by the service's own Piper voice, about 64 s, so Whisper base decodes
# it in three 30-second windows (three model calls, each yielding several segments).
STORY = [
    ("kitchen", "We painted the kitchen yellow last spring."),
    ("garden", "Tomatoes grow best in a sunny garden."),
    ("bicycle", "My brother rides his bicycle to school every morning."),
    ("library", "The old library closes early on Fridays."),
    ("mountain", "From the top of the mountain you can see three lakes."),
    ("river", "A narrow bridge crosses the river near the mill."),
    ("teacher", "Our teacher read us a story about a brave fox."),
    ("airport", "The taxi to the airport took almost an hour."),
    ("camera", "She dropped her camera in the sand at the beach."),
    ("piano", "He practices the piano after dinner."),
    ("market", "Fresh bread is sold at the market on Saturday."),
    ("castle", "Tourists queue for hours to visit the castle."),
    ("forest", "Wolves were once common in this forest."),
    ("island", "The ferry to the island leaves at noon."),
    ("pencil", "Could you lend me a pencil for the exam?"),
    ("rabbit", "A rabbit dug a hole under our fence."),
    ("guitar", "The guitar needs new strings before the concert."),
    ("hospital", "The new hospital has a helicopter pad on the roof."),
    ("coffee", "I never drink coffee late in the evening."),
    ("winter", "Snow stayed on the roads for most of the winter."),
    ("doctor", "The doctor told him to rest for a week."),
    ("museum", "Children get free tickets to the museum on Sundays."),
    ("train", "Our train was delayed by a storm in the north."),
    ("orange", "Peel the orange and share it with your sister."),
]


@pytest.fixture(scope="module")
def service(logs_dir: Path) -> Iterator[tuple[str, int]]:
    """(base URL, pid) of a speech service with batch aging 2 s and max_queue 2."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "JUNE_SPEECH_HOST": "127.0.0.1",
        "JUNE_SPEECH_PORT": str(port),
        "JUNE_SPEECH_BATCH_AGING_S": "2",
        "JUNE_SPEECH_MAX_QUEUE": "2",
    }
    with run_service("speech-classes", ["-m", "speech"], env, f"{url}/ready", logs_dir, timeout=180) as proc:
        yield url, proc.pid


@pytest.fixture(scope="module")
def url(service: tuple[str, int]) -> str:
    return service[0]


@pytest.fixture(scope="module")
def story(url: str) -> Callable[[int], bytes]:
    """n → WAV of the first n STORY sentences, spoken by the service (made once per n)."""

    @functools.cache
    def clip(n: int) -> bytes:
        body = {
            "model": "tts-1",
            "voice": "alloy",
            "input": " ".join(s for _, s in STORY[:n]),
            "response_format": "wav",
        }
        r = httpx.post(url + "/v1/audio/speech", json=body, timeout=300)
        assert r.status_code == 200, r.text
        return r.content

    return clip


def recovered(text: str, n: int = len(STORY)) -> float:
    """The share of the first `n` STORY sentences whose key word is in `text`."""
    return sum(word in text.lower() for word, _ in STORY[:n]) / n


@pytest.fixture(scope="module")
def sentence(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    return decode(espeak_wav(SENTENCE, tmp_path_factory.mktemp("classes") / "s.wav").read_bytes(), 16000)


class Log:
    """Events from several client threads, in the order they happened: (who, what)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.texts: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, who: str, what: str) -> None:
        with self._lock:
            self.events.append((who, what))

    def index(self, who: str, what: str) -> int:
        return self.events.index((who, what))

    def wait_for(self, who: str, what: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while (who, what) not in self.events:
            assert time.monotonic() < deadline, f"no {what} from {who}: {self.events}"
            time.sleep(0.02)


def transcribe(url: str, log: Log, who: str, clip: bytes, model: str, cls: str | None) -> threading.Thread:
    """Stream a transcription in a thread, logging its first segment ("delta") and its end ("done")."""

    def run() -> None:
        headers = {"X-June-Class": cls} if cls else {}
        with (
            httpx.Client(base_url=url, timeout=300) as h,
            h.stream(
                "POST",
                "/v1/audio/transcriptions",
                files={"file": ("c.wav", clip)},
                data={"model": model, "stream": "true"},
                headers=headers,
            ) as r,
        ):
            assert r.status_code == 200, r.read()
            for line in r.iter_lines():
                if '"transcript.text.delta"' in line and (who, "delta") not in log.events:
                    log.add(who, "delta")
                if '"transcript.text.done"' in line:
                    log.texts[who] = re.search(r'"text": "([^"]*)"', line).group(1)  # type: ignore[union-attr]
                    log.add(who, "done")

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def speak(url: str, log: Log, who: str, text: str, cls: str | None) -> threading.Thread:
    """Stream a speech request in a thread, logging its first audio chunk and its end."""

    def run() -> None:
        headers = {"X-June-Class": cls} if cls else {}
        body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "pcm"}
        with (
            httpx.Client(base_url=url, timeout=300) as h,
            h.stream("POST", "/v1/audio/speech", json=body, headers=headers) as r,
        ):
            assert r.status_code == 200, r.read()
            size = 0
            for chunk in r.iter_bytes():
                if not size:
                    log.add(who, "first")
                size += len(chunk)
            assert size > 24000, size  # more than half a second of pcm16 at 24 kHz
            log.add(who, "done")

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def kitchens(text: str) -> int:
    return text.lower().count("kitchen")


def test_a_live_transcription_overtakes_a_running_batch_one_on_its_own_slot(
    url: str, sentence: np.ndarray, story: Callable[[int], bytes]
) -> None:
    """A live turn started while a long batch transcription runs finishes first, on the live slot
    (the batch request is not preempted), and both transcripts are whole."""
    with httpx.Client(base_url=url, timeout=60) as http:
        preempted = metric(http, 'june_speech_preempted_total{class="batch"}')
        admitted = metric(http, 'june_speech_admitted_total{class="live"}')
        waits = metric(http, 'june_speech_queue_wait_seconds_count{class="live"}')
        served = metric(http, 'june_speech_service_seconds_count{class="live"}')
        log = Log()
        batch = transcribe(url, log, "batch", story(len(STORY)), "base", "batch")
        log.wait_for("batch", "delta")  # it runs (its first 30 s window is decoded)
        live = transcribe(url, log, "live", spoken(sentence, 1), "tiny.en", "live")
        live.join(300)
        batch.join(300)
        assert log.index("live", "done") < log.index("batch", "done"), log.events
        assert kitchens(log.texts["live"]) == 1 and recovered(log.texts["batch"]) >= 0.8, log.texts
        assert metric(http, 'june_speech_preempted_total{class="batch"}') == preempted
        assert metric(http, 'june_speech_admitted_total{class="live"}') == admitted + 1
        assert metric(http, 'june_speech_queue_wait_seconds_count{class="live"}') == waits + 1
        assert metric(http, 'june_speech_service_seconds_count{class="live"}') == served + 1


def test_a_running_batch_transcription_gives_its_slot_to_interactive_work_between_segments(
    url: str, sentence: np.ndarray, story: Callable[[int], bytes]
) -> None:
    """Interactive work cannot use the live slot: the batch request yields at its next segment, the
    interactive one finishes first, and the batch one then finishes whole, its segments in order."""
    with httpx.Client(base_url=url, timeout=60) as http:
        preempted = metric(http, 'june_speech_preempted_total{class="batch"}')
        log = Log()
        batch = transcribe(url, log, "batch", story(len(STORY)), "base", "batch")
        log.wait_for("batch", "delta")
        interactive = transcribe(url, log, "interactive", spoken(sentence, 1), "tiny.en", None)
        interactive.join(300)
        batch.join(300)
        assert log.index("interactive", "done") < log.index("batch", "done"), log.events
        assert kitchens(log.texts["interactive"]) == 1 and recovered(log.texts["batch"]) >= 0.8, log.texts
        assert metric(http, 'june_speech_preempted_total{class="batch"}') >= preempted + 1


def test_speech_requests_overtake_queued_batch_speech_by_class(url: str) -> None:
    """While a long batch speech request runs and another batch one queues, an interactive and a
    live speech request both finish before the queued batch one, and all of them are spoken whole."""
    log = Log()
    running = speak(url, log, "batch-running", LONG_TEXT, "batch")
    log.wait_for("batch-running", "first")
    queued = speak(url, log, "batch-queued", "The oven is preheating now.", "batch")
    time.sleep(0.3)  # it arrives first
    interactive = speak(url, log, "interactive", "The lights are on now.", "interactive")
    live = speak(url, log, "live", "Sure, here it is.", "live")
    for t in (running, queued, interactive, live):
        t.join(300)
    done = [who for who, what in log.events if what == "done"]
    assert done.index("live") < done.index("batch-queued"), log.events
    assert done.index("interactive") < done.index("batch-running") < done.index("batch-queued"), log.events


def test_a_batch_transcription_still_finishes_while_interactive_requests_keep_coming(
    url: str, sentence: np.ndarray, story: Callable[[int], bytes]
) -> None:
    """No starvation: two clients keep an interactive request waiting all the time (for up to 120 s),
    yet a batch request that has waited past the aging time (2 s here) goes ahead of the newer ones,
    one segment at a time, and finishes whole while they still come."""
    log = Log()
    stop = threading.Event()
    one = spoken(sentence, 1)
    served = [0, 0]

    def client(i: int) -> None:
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=url, timeout=300) as h:
            while not stop.is_set() and time.monotonic() < deadline:
                r = h.post("/v1/audio/transcriptions", files={"file": ("c.wav", one)}, data={"model": "tiny.en"})
                assert r.status_code == 200, r.text
                served[i] += 1

    clients = [threading.Thread(target=client, args=(i,)) for i in range(2)]
    for c in clients:
        c.start()
    while min(served) < 1:  # both clients are in their loop: the slot always has an interactive waiter
        time.sleep(0.05)
    before = sum(served)
    batch = transcribe(url, log, "batch", story(3), "base", "batch")  # one window, three segments
    batch.join(300)
    still_coming = all(c.is_alive() for c in clients)
    stop.set()
    for c in clients:
        c.join(300)
    assert ("batch", "done") in log.events and still_coming, (log.events, served)
    assert recovered(log.texts["batch"], 3) >= 0.8, log.texts
    assert sum(served) > before + 2, served  # the interactive clients were served meanwhile


def test_a_full_class_gets_503_with_retry_after_while_other_classes_are_admitted(
    url: str, sentence: np.ndarray, story: Callable[[int], bytes]
) -> None:
    """Batch: 1 slot + 2 queue places. A fourth batch request is refused (503, Retry-After, counted for
    batch only) while an interactive request is still served."""
    long_clip = story(len(STORY))

    async def main() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=300) as http:

            async def batch() -> None:
                files = {"file": ("c.wav", long_clip)}
                await http.post("/v1/audio/transcriptions", files=files, headers={"X-June-Class": "batch"})

            async def count(name: str) -> float:
                m = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", (await http.get("/metrics")).text, re.M)
                return float(m.group(1)) if m else 0.0

            admitted = await count('june_speech_admitted_total{class="batch"}')
            rejected = {c: await count(f'june_speech_rejected_total{{class="{c}"}}') for c in ("batch", "interactive")}
            tasks = [asyncio.create_task(batch()) for _ in range(3)]
            while await count('june_speech_admitted_total{class="batch"}') < admitted + 3:  # noqa: ASYNC110  # another process's metrics
                await asyncio.sleep(0.05)
            r = await http.post(
                "/v1/audio/transcriptions", files={"file": ("c.wav", long_clip)}, headers={"X-June-Class": "batch"}
            )
            assert r.status_code == 503 and r.json()["error"]["code"] == "server_busy", r.text
            assert r.headers["retry-after"].isdigit() and int(r.headers["retry-after"]) >= 1, r.headers
            r = await http.post(
                "/v1/audio/transcriptions", files={"file": ("c.wav", spoken(sentence, 1))}, data={"model": "tiny.en"}
            )
            assert r.status_code == 200 and kitchens(r.json()["text"]) == 1, r.text
            assert await count('june_speech_rejected_total{class="batch"}') == rejected["batch"] + 1
            assert await count('june_speech_rejected_total{class="interactive"}') == rejected["interactive"]
            for t in tasks:
                t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks)

    asyncio.run(main())
    with httpx.Client(base_url=url, timeout=60) as http:  # the abandoned ones leave
        deadline = time.monotonic() + 120
        while metric(http, "june_speech_queue_depth") != 0.0:
            assert time.monotonic() < deadline
            time.sleep(0.2)


@pytest.mark.parametrize("route", ["/v1/audio/transcriptions", "/v1/audio/translations", "/v1/audio/speech"])
def test_an_unknown_class_is_a_400_naming_the_header(url: str, route: str, sentence: np.ndarray) -> None:
    with httpx.Client(base_url=url, timeout=60) as http:
        headers = {"X-June-Class": "urgent"}
        if route == "/v1/audio/speech":
            r = http.post(route, json={"model": "tts-1", "voice": "alloy", "input": "Hello."}, headers=headers)
        else:
            r = http.post(route, files={"file": ("c.wav", spoken(sentence, 1))}, headers=headers)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert (error["param"], error["code"], error["type"]) == (
            "X-June-Class",
            "invalid_value",
            "invalid_request_error",
        )
        assert "live, interactive, batch" in error["message"]
        ok = http.post(route.replace("translations", "transcriptions"), headers={"X-June-Class": "LIVE"}, **(
            {"json": {"model": "tts-1", "voice": "alloy", "input": "Hello."}}
            if route == "/v1/audio/speech"
            else {"files": {"file": ("c.wav", spoken(sentence, 1))}, "data": {"model": "tiny.en"}}
        ))  # fmt: skip
        assert ok.status_code == 200, ok.text


def thread_cpu(pid: int) -> dict[tuple[int, str], tuple[int, int]]:
    """(process id, thread id) → (CPU ticks used, nice) of every thread of `pid` and of its child
    processes (the background worker: a child of whichever thread started it), from
    /proc/PID/task/*/stat (fields 14+15 and 19) and /proc/PID/task/*/children."""
    out = {}
    children = [
        c for t in os.listdir(f"/proc/{pid}/task") for c in Path(f"/proc/{pid}/task/{t}/children").read_text().split()
    ]
    for proc in [pid, *map(int, children)]:
        for tid in os.listdir(f"/proc/{proc}/task"):
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{proc}/task/{tid}/stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()  # from field 3 (state) on
                out[proc, tid] = (int(fields[11]) + int(fields[12]), int(fields[16]))
    return out


def cpu_by_nice(pid: int, work: object) -> tuple[dict[int, int], int]:
    """CPU ticks that `work()` cost service `pid` by nice, and how many of them its child processes used."""
    before = thread_cpu(pid)
    assert callable(work)
    work()
    by_nice: dict[int, int] = {}
    in_children = 0
    for (proc, tid), (ticks, nice) in thread_cpu(pid).items():
        used = ticks - before.get((proc, tid), (0, nice))[0]
        by_nice[nice] = by_nice.get(nice, 0) + used
        in_children += used if proc != pid else 0
    return by_nice, in_children


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_non_live_model_work_runs_at_lower_priority_in_the_background_process(
    service: tuple[str, int], story: Callable[[int], bytes]
) -> None:
    """Most CPU time of a batch transcription and a batch speech request is spent at the background nice
    (10 without a live window), in the background worker process (speech.worker) that a live window can stop; a live
    one's in the service itself, at its own nice."""
    url, pid = service
    clip = story(6)
    with httpx.Client(base_url=url, timeout=300) as http:

        def run(cls: str) -> None:
            r = http.post(
                "/v1/audio/transcriptions",
                files={"file": ("c.wav", clip)},
                data={"model": "base"},
                headers={"X-June-Class": cls},
            )
            assert r.status_code == 200 and recovered(r.json()["text"], 6) >= 0.8, r.text
            body = {"model": "tts-1", "voice": "alloy", "input": LONG_TEXT[:400], "response_format": "wav"}
            r = http.post("/v1/audio/speech", json=body, headers={"X-June-Class": cls})
            assert r.status_code == 200 and len(r.content) > 48000, r.status_code

        run("batch")  # loads the background process's Whisper model first
        own = os.getpriority(os.PRIO_PROCESS, pid)
        batch, batch_in_children = cpu_by_nice(pid, lambda: run("batch"))
        live, live_in_children = cpu_by_nice(pid, lambda: run("live"))
    assert batch.get(own + SpeechSettings().background_nice_or_default, 0) > 0.8 * sum(batch.values()), batch
    assert batch_in_children > 0.7 * sum(batch.values()), (batch_in_children, batch)
    assert live.get(own, 0) > 0.8 * sum(live.values()), live
    assert live_in_children < 0.1 * sum(live.values()), (live_in_children, live)


def test_speech_spans_carry_the_request_class(sentence: np.ndarray) -> None:
    exporter = InMemorySpanExporter()
    app = create_app(SpeechSettings(preload=[]), telemetry=setup("speech", exporter=exporter))
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=120) as http:
        body = {"model": "tts-1", "voice": "alloy", "input": "Sure. Here it is."}
        assert http.post("/v1/audio/speech", json=body, headers={"X-June-Class": "live"}).status_code == 200
        files = {"file": ("c.wav", spoken(sentence, 1))}
        r = http.post(
            "/v1/audio/transcriptions", files=files, data={"model": "tiny.en"}, headers={"X-June-Class": "batch"}
        )
        assert r.status_code == 200 and kitchens(r.json()["text"]) == 1, r.text
    classes = {
        (s.name, s.attributes.get("class")) for s in exporter.get_finished_spans() if s.name.startswith("speech.")
    }
    assert classes == {("speech.synthesize", "live"), ("speech.transcribe", "batch")}, classes
