"""`BackgroundWorker`: the speech service's non-live model calls, in a child process that stops while
a live turn waits.

Lower-priority threads (`speech.lanes`) make other classes' work yield to a live turn only in part:
the scheduler can stop a request only between two units (a Whisper window, a sentence), and a unit
already in flight when a live turn's speech ends (a bot's transcription, a reply's sentence) runs on
beside the live transcription and first reply sentence, still getting a share of the cores and the
GIL. Lowering those threads further trades the other way: it slows the bots' replies all the time,
live turn or not. Measured on the 2-core dev box (`june bench realtime --busy`): at nice 10 the busy
turns' STT took +0.1 s over idle and a burst of bot voice messages 1.9-2.3× its time alone; at nice 5
the burst 1.65× and the live turns' p50 1.47× idle.

So Whisper and TTS calls of the non-live classes run in one child process, and while the live window
(`core.live_signal`) is open the service stops it (SIGSTOP stops every thread at once: CTranslate2's,
OpenMP's and onnxruntime's) and continues it (SIGCONT) as soon as the window closes; the window's
deadline bounds every pause. A live turn then has the cores whole while it waits for its answer, and
the other work runs at `nice` (a smaller step than the threads' alone needed) the rest of the time.
Decoding and encoding stay on the service's niced threads (`speech.lanes`): they are short.

The child builds its own models from the service's `SpeechSettings` (`speech.loaders`): each Whisper
model on first use (counted by `load` / `unload`, so the service's idle TTL applies) and the speech
engine on its first sentence. RSS: one Python with faster-whisper and onnxruntime, plus its models.
Calls go over a duplex pipe and come back in any order (the protocol and the child's side:
`speech.worker_child`); the child runs each on a thread of its own, so requests overlap as on the
service's threads.
A child that dies (killed, out of memory) fails the calls in flight with `WorkerLost` (503 with
Retry-After) and is started again; the child dies with the service (PR_SET_PDEATHSIG, even stopped).

Linux only (`speech.app` makes one where `speech.lanes` has a background lane).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from core.live_signal import LiveSignal
from core.web import OpenAIError
from speech.engines import EngineInputError, Segment, Speech, TranscribeOptions, VoiceMix
from speech.metrics import SpeechMetrics
from speech.settings import SpeechSettings
from speech.worker_child import READY, serve

__all__ = ["BackgroundWorker", "WorkerError", "WorkerLost", "WorkerTranscriber"]

log = logging.getLogger(__name__)

POLL_S = 0.02
"""How often the live window is read while calls are in flight (seconds)."""
START_TIMEOUT_S = 30.0
"""How long a call waits for a child to start before WorkerLost (seconds)."""
RESTART_AFTER_S = 1.0
"""Pause before starting a child again after one died (seconds): a child that cannot start does not spin."""


class WorkerLost(OpenAIError):
    """The background process died while serving the call (or could not start): 503, Retry-After 1."""

    def __init__(self, why: str) -> None:
        super().__init__(
            503,
            f"The speech service's background worker stopped ({why}); retry in about 1 s.",
            code="server_busy",
            headers={"Retry-After": "1"},
        )


class WorkerError(RuntimeError):
    """A model call failed in the background process: "ExceptionType: message" of what it raised."""


class BackgroundWorker:
    """The child process (module docstring) and the calls to it; blocking methods, for worker threads.

    `nice`: how much lower than the service's the child's OS priority is. `live_signal`: the live
    window file whose open window stops the child (None: never stopped). `metrics` count the pauses.
    `start()` starts the child (from a thread that lives as long as this object: the child dies with
    it); `close()` stops it.
    """

    def __init__(
        self,
        settings: SpeechSettings,
        *,
        nice: int = 10,
        live_signal: LiveSignal | None = None,
        metrics: SpeechMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.nice = nice
        self.live_signal = live_signal
        self.metrics = metrics
        self._lock = threading.Condition()
        self._send = threading.Lock()
        self._calls = itertools.count()
        self._pending: dict[int, Future[Any]] = {}
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._stopped_at: float | None = None
        self._closed = False
        self._supervisor = threading.Thread(target=self._supervise, name="speech-worker-supervisor", daemon=True)
        self._posts: queue.SimpleQueue[tuple[str, tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._poster = threading.Thread(target=self._send_posts, name="speech-worker-post", daemon=True)

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs; None before it started or after it died."""
        process = self._process
        return process.pid if process is not None and process.is_alive() else None

    def start(self) -> None:
        """Start the child and its supervisor (returns at once; calls wait for the child)."""
        self._supervisor.start()
        self._poster.start()

    def call(self, operation: str, *args: Any) -> Any:
        """Run `operation` in the child and return its value, waiting (also while the child is
        stopped). Raises EngineInputError or WorkerError as the call did, WorkerLost if the child died."""
        future: Future[Any] = Future()
        with self._lock:
            deadline = time.monotonic() + START_TIMEOUT_S
            while self._conn is None and not self._closed and (left := deadline - time.monotonic()) > 0:
                self._lock.wait(left)
            if self._conn is None:
                raise WorkerLost("the service is stopping" if self._closed else "it did not start")
            call = next(self._calls)
            self._pending[call] = future
            conn = self._conn
            self._lock.notify_all()  # the supervisor watches the window while calls are in flight
        try:
            with self._send:
                conn.send((call, operation, args))
        except (OSError, ValueError) as e:  # the child died: its reader fails the call too
            self._fail({call: future}, f"{type(e).__name__}: {e}")
        return future.result()

    def synthesize(self, text: str, *, voice: VoiceMix, speed: float = 1.0, all_cores: bool = False) -> Speech:
        """`text` spoken by the configured engine in the child (`speech.engines.Synthesizer.synthesize`;
        the engine loads on the first call). Raises EngineInputError, WorkerError, WorkerLost."""
        speech: Speech = self.call("synthesize", text, voice, speed, all_cores)
        return speech

    def post(self, operation: str, *args: Any) -> None:
        """Send `operation` without waiting for it (dropping state in the child; nothing when no child
        runs). Lock-free, so finalizers may call it from any thread at any point (the garbage collector
        runs them where it pleases), and never blocks (a send to a stopped child may wait for the
        window to close): a thread of its own sends it."""
        self._posts.put((operation, args))  # SimpleQueue.put: reentrant

    def _send_posts(self) -> None:
        while (post := self._posts.get()) is not None:
            conn = self._conn
            if conn is None:
                continue
            operation, args = post
            try:
                with self._send:
                    conn.send((next(self._calls), operation, args))
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        """Stop the child (continued first if stopped, then asked to end, then killed after 5 s)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        if self._supervisor.is_alive():
            self._supervisor.join(10)
        self._posts.put(None)

    # -- the supervisor thread

    def _supervise(self) -> None:
        while not self._closed:
            try:
                process, conn = self._spawn()
            except Exception as e:  # noqa: BLE001 - logged; the calls waiting get WorkerLost on close
                log.error("could not start the speech background worker: %s", e)
                time.sleep(RESTART_AFTER_S)
                continue
            reader = threading.Thread(target=self._read, args=(conn,), name="speech-worker-reader", daemon=True)
            reader.start()
            with self._lock:
                self._process, self._conn = process, conn
                self._lock.notify_all()
            self._watch(process)
            self._resume(process)
            with self._lock:
                self._conn = None
            if self._closed:
                try:
                    conn.send(None)
                except (OSError, ValueError):
                    pass
                process.join(5)
            if process.is_alive():
                process.kill()
            process.join()
            conn.close()
            reader.join()
            if not self._closed:
                log.error("the speech background worker died (exit code %s); starting it again", process.exitcode)
                time.sleep(RESTART_AFTER_S)
        with self._lock:
            self._process = None

    def _spawn(self) -> tuple[multiprocessing.process.BaseProcess, Connection]:
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=serve,
            args=(theirs, self.settings, self.nice, os.getpid()),
            name="june-speech-background",
            daemon=True,
        )
        process.start()
        theirs.close()
        try:
            if not ours.poll(START_TIMEOUT_S) or ours.recv() != READY:
                raise OSError("no answer")
        except (OSError, EOFError) as e:
            process.kill()
            process.join()
            ours.close()
            raise OSError(f"the worker did not start (exit code {process.exitcode})") from e
        log.info("speech background worker started: pid %d, nice +%d", process.pid, self.nice)
        return process, ours

    def _watch(self, process: multiprocessing.process.BaseProcess) -> None:
        """Until the child dies or `close`: stop it while the live window is open and calls are in flight."""
        while process.is_alive() and not self._closed:
            with self._lock:
                if not self._pending and self._stopped_at is None:
                    self._lock.wait(1.0)  # idle: nothing to pause
                    continue
            window = self.live_signal.remaining() if self.live_signal is not None else 0.0
            if window > 0 and self._stopped_at is None:
                os.kill(process.pid, signal.SIGSTOP)  # type: ignore[arg-type]
                self._stopped_at = time.monotonic()
                if self.metrics is not None:
                    self.metrics.background_pauses.inc()
            elif window <= 0:
                self._resume(process)
            time.sleep(POLL_S)

    def _resume(self, process: multiprocessing.process.BaseProcess) -> None:
        if self._stopped_at is None:
            return
        if process.pid is not None:
            try:
                os.kill(process.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        if self.metrics is not None:
            self.metrics.background_paused.inc(time.monotonic() - self._stopped_at)
        self._stopped_at = None

    def _read(self, conn: Connection) -> None:
        """Hand each answer to its caller; when the pipe ends, fail the calls still in flight."""
        while True:
            try:
                call, ok, value = conn.recv()
            except (EOFError, OSError):
                break
            with self._lock:
                future = self._pending.pop(call, None)
            if future is None:  # a `post`'s answer
                continue
            if ok:
                future.set_result(value)
            else:
                kind, message, param = value
                future.set_exception(
                    EngineInputError(message, param=param) if kind == "input" else WorkerError(message)
                )
        with self._lock:
            lost, self._pending = self._pending, {}
            if self._conn is conn:  # later calls wait for the next child
                self._conn = None
            self._lock.notify_all()
        self._fail(lost, "the process ended")

    @staticmethod
    def _fail(calls: Mapping[int, Future[Any]], why: str) -> None:
        for future in calls.values():
            if not future.done():
                future.set_exception(WorkerLost(why))


class WorkerTranscriber:
    """`speech.engines.Transcriber` for Whisper model `name` in `worker`'s child (loaded there by
    `load`, unloaded when this object is collected). Segments come one `next()` at a time, as
    the in-process transcriber's."""

    def __init__(self, worker: BackgroundWorker, name: str) -> None:
        self.worker = worker
        self.name = name

    @classmethod
    def load(cls, worker: BackgroundWorker, name: str) -> WorkerTranscriber:
        """Load `name` in the child (blocking; seconds) and return its handle. Raises WorkerError."""
        worker.call("load", name)
        model = cls(worker, name)
        weakref.finalize(model, worker.post, "unload", name)
        return model

    def start(self, samples: np.ndarray, options: TranscribeOptions) -> tuple[str, Iterator[Segment]]:
        """See `speech.engines.Transcriber.start`."""
        language, stream = self.worker.call("start", self.name, samples, options)
        return language, _Segments(self.worker, stream)


class _Segments(Iterator[Segment]):
    """A transcription in progress in the child; dropped there when it ends or is collected."""

    def __init__(self, worker: BackgroundWorker, stream: int) -> None:
        self.worker = worker
        self.stream = stream
        self._drop = weakref.finalize(self, worker.post, "drop", stream)

    def __next__(self) -> Segment:
        if not self._drop.alive:
            raise StopIteration
        segment = self.worker.call("next", self.stream)
        if segment is None:
            self._drop.detach()  # the child dropped it already
            raise StopIteration
        return segment
