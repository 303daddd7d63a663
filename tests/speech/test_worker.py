"""The speech service's background worker process (speech.worker), driven directly: non-live Whisper
and TTS calls run in a child process at a lower priority, which an open live window stops (SIGSTOP)
until it closes or its deadline passes; a child that dies fails its calls with a 503 and starts
again; a child dies with the service, stopped or not.

Real Whisper (tiny.en) and Piper in the child; the child's state and CPU come from /proc.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from core.audio import decode
from core.live_signal import LiveSignal
from speech.engines import EngineInputError, Segment, TranscribeOptions
from speech.metrics import SpeechMetrics
from speech.settings import SpeechSettings
from speech.worker import BackgroundWorker, WorkerLost, WorkerTranscriber
from tests.clips import espeak_wav
from tests.speech.test_scheduling import SENTENCE

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGSTOP and per-process nice: Linux")

NICE = 3


@pytest.fixture(scope="module")
def sayings(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """SENTENCE said 7 times, 2.5 s apart (float32 16 kHz, about 38 s): two Whisper windows."""
    sentence = decode(espeak_wav(SENTENCE, tmp_path_factory.mktemp("worker") / "s.wav").read_bytes(), 16000)
    gap = np.zeros(int(2.5 * 16000), np.float32)
    return np.concatenate([part for _ in range(7) for part in (sentence, gap)])


@pytest.fixture(scope="module")
def window(tmp_path_factory: pytest.TempPathFactory) -> LiveSignal:
    return LiveSignal(tmp_path_factory.mktemp("worker") / "live")


@pytest.fixture(scope="module")
def metrics() -> SpeechMetrics:
    return SpeechMetrics()


@pytest.fixture(scope="module")
def worker(window: LiveSignal, metrics: SpeechMetrics) -> Iterator[BackgroundWorker]:
    worker = BackgroundWorker(SpeechSettings(), nice=NICE, live_signal=window, metrics=metrics)
    worker.start()
    yield worker
    worker.close()


def state(pid: int) -> tuple[str, int, int]:
    """(state letter, CPU ticks of all its threads, nice) of process `pid`, from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # from field 3 (state) on
    return fields[0], int(fields[11]) + int(fields[12]), int(fields[16])


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def kitchens(segments: list[Segment]) -> int:
    """How many sayings of SENTENCE the segments heard."""
    return " ".join(s.text for s in segments).lower().count("kitchen")


def test_calls_run_in_a_child_at_the_lower_priority(worker: BackgroundWorker, sayings: np.ndarray) -> None:
    whisper = WorkerTranscriber.load(worker, "tiny.en")
    language, segments = whisper.start(sayings, TranscribeOptions())
    assert language == "en" and kitchens(list(segments)) >= 6
    speech = worker.synthesize("The kitchen lights are on.", voice=(("en_US-joe-medium", 1.0),))
    assert speech.duration > 1.0 and np.abs(speech.samples).max() > 0.05
    pid = worker.pid
    assert pid is not None and pid != os.getpid()
    assert state(pid)[2] == min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICE)
    with pytest.raises(EngineInputError) as bad:  # the child's input errors come back as themselves
        whisper.start(sayings, TranscribeOptions(language="xx"))
    assert bad.value.param == "language"


def test_an_open_live_window_stops_the_child_until_it_closes(
    worker: BackgroundWorker, window: LiveSignal, metrics: SpeechMetrics, sayings: np.ndarray
) -> None:
    whisper = WorkerTranscriber.load(worker, "tiny.en")
    pid = worker.pid
    assert pid is not None
    paused_before = metrics.background_paused._value.get()

    window.set(time.monotonic() + 30)  # a live turn waits for its answer
    heard: list[Segment] = []
    call = threading.Thread(target=lambda: heard.extend(whisper.start(sayings, TranscribeOptions())[1]))
    call.start()
    try:
        assert wait_until(lambda: state(pid)[0] == "T", 5), state(pid)
        ticks = state(pid)[1]
        time.sleep(0.5)
        assert state(pid)[1] == ticks and call.is_alive() and not heard  # stopped: no CPU, no segment
    finally:
        window.set(None)  # the live turn got its answer
    call.join(60)
    assert not call.is_alive() and kitchens(heard) >= 6
    assert state(pid)[0] != "T"
    assert metrics.background_pauses._value.get() >= 1
    assert metrics.background_paused._value.get() - paused_before >= 0.5

    # A window nobody closes (a gateway that crashed) ends at its deadline.
    window.set(time.monotonic() + 1.0)
    start = time.monotonic()
    _, segments = whisper.start(sayings, TranscribeOptions())
    assert kitchens(list(segments)) >= 6
    assert time.monotonic() - start >= 0.8  # it waited out the window
    assert state(pid)[0] != "T"


def test_a_child_that_dies_fails_its_calls_with_503_and_starts_again(
    worker: BackgroundWorker, window: LiveSignal, sayings: np.ndarray
) -> None:
    whisper = WorkerTranscriber.load(worker, "tiny.en")
    old = worker.pid
    assert old is not None
    window.set(time.monotonic() + 30)  # keeps the call in flight until the kill
    errors: list[BaseException] = []

    def transcribe() -> None:
        try:
            whisper.start(sayings, TranscribeOptions())
        except BaseException as e:  # noqa: BLE001 - what the call raised is the point
            errors.append(e)

    call = threading.Thread(target=transcribe)
    call.start()
    try:
        assert wait_until(lambda: state(old)[0] == "T", 5)
        os.kill(old, signal.SIGKILL)
        call.join(10)
    finally:
        window.set(None)
    assert len(errors) == 1 and isinstance(errors[0], WorkerLost), errors
    assert errors[0].status_code == 503 and errors[0].headers == {"Retry-After": "1"}
    _, segments = whisper.start(sayings, TranscribeOptions())  # the next call gets a new child
    assert kitchens(list(segments)) >= 6
    assert worker.pid not in (None, old)


SERVICE = """
import os, signal, sys, time
from speech.settings import SpeechSettings
from speech.worker import BackgroundWorker

if __name__ == "__main__":
    worker = BackgroundWorker(SpeechSettings(), nice=1)
    worker.start()
    while worker.pid is None:
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGSTOP)  # as during a live window
    print(worker.pid, flush=True)
    time.sleep(600)
"""


def test_the_child_dies_with_the_service_even_while_stopped(tmp_path: Path) -> None:
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    root = Path(__file__).parents[2]
    service = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(root)}
    )
    try:
        assert service.stdout is not None
        child = int(service.stdout.readline())
        assert wait_until(lambda: state(child)[0] == "T", 5), state(child)  # a signal lands a moment later
        service.kill()  # no cleanup runs
        service.wait(10)

        def gone() -> bool:
            try:
                return state(child)[0] in "ZX"  # a zombie where nothing reaps orphans
            except FileNotFoundError:
                return True

        assert wait_until(gone, 10), state(child)
    finally:
        service.kill()
