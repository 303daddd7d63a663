"""`serve`: the background worker process's side of `speech.worker` (the module its child runs).

The child answers calls that come over its end of a duplex pipe as (id, operation, arguments) with
(id, ok, value): on success the operation's value; on failure ("input", message, param) for an
`EngineInputError` (the service raises it again, a 400 naming the field) or ("error",
"ExceptionType: message", None) for anything else. Each call runs on a thread of its own. Operations:
"load" / "unload" a Whisper model (counted), "start" a transcription (→ language, stream id), "next"
segment of a stream (None at its end), "drop" a stream, "synthesize" a piece of text (→ Speech).

Its first message is `READY`, sent once it will die with the service (PR_SET_PDEATHSIG): only then may
the service stop it (SIGSTOP), since nothing else ends a stopped process.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from speech.engines import EngineInputError, Segment, Speech, Synthesizer, TranscribeOptions, Transcriber, VoiceMix
from speech.lanes import lower_priority
from speech.loaders import load_synthesizer, load_transcriber
from speech.settings import SpeechSettings

__all__ = ["READY", "serve"]

READY = "ready"
"""The child's first message: it will die with the service from now on, so it may be stopped."""
_PR_SET_PDEATHSIG = 1


class _Models:
    """The child's models and transcriptions in progress, by name and stream id (thread-safe). A
    Whisper model loads on `load` or on the first `start` that needs it (a child started again after
    one died has none), and is dropped when its last `load` is matched by `unload`."""

    def __init__(self, settings: SpeechSettings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self.loading = threading.Lock()
        self.whisper: dict[str, Transcriber] = {}
        self.users: dict[str, int] = {}
        self.streams: dict[int, Iterator[Segment]] = {}
        self.stream_ids = itertools.count()
        self.synthesizer: Synthesizer | None = None

    def _whisper(self, name: str) -> Transcriber:
        with self.loading:
            if (model := self.whisper.get(name)) is None:
                model = self.whisper[name] = load_transcriber(self.settings, name)
            return model

    def load(self, name: str) -> None:
        self._whisper(name)
        with self.lock:
            self.users[name] = self.users.get(name, 0) + 1

    def unload(self, name: str) -> None:
        with self.lock:
            self.users[name] = self.users.get(name, 0) - 1
            if self.users[name] <= 0:
                self.whisper.pop(name, None)
                del self.users[name]

    def start(self, name: str, samples: np.ndarray, options: TranscribeOptions) -> tuple[str, int]:
        language, segments = self._whisper(name).start(samples, options)
        with self.lock:
            stream = next(self.stream_ids)
            self.streams[stream] = segments
        return language, stream

    def next(self, stream: int) -> Segment | None:
        with self.lock:
            segments = self.streams[stream]
        segment = next(segments, None)
        if segment is None:
            self.drop(stream)
        return segment

    def drop(self, stream: int) -> None:
        with self.lock:
            self.streams.pop(stream, None)

    def speaker(self) -> Synthesizer:
        """The configured speech engine, loaded on first use (`serve` warms it at start)."""
        with self.loading:
            if self.synthesizer is None:
                self.synthesizer = load_synthesizer(self.settings)
            return self.synthesizer

    def synthesize(self, text: str, voice: VoiceMix, speed: float, all_cores: bool) -> Speech:
        return self.speaker().synthesize(text, voice=voice, speed=speed, all_cores=all_cores)


def _die_with_parent() -> None:
    """SIGKILL this process when the thread that started it ends (the service's supervisor thread),
    stopped or not: nothing else ends a stopped process. Linux only; elsewhere a no-op."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux's libc
        pass


def serve(conn: Connection, settings: SpeechSettings, nice: int, parent: int) -> None:
    """The child's main loop: answer each call on a thread of its own until the pipe closes."""
    _die_with_parent()
    if os.getppid() != parent:  # the service died before PR_SET_PDEATHSIG took hold
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C: the service stops the child
    if nice:
        lower_priority(nice)  # this thread's, inherited by every thread the child starts
    conn.send(READY)  # from here on it may be stopped: it dies with the service all the same
    models = _Models(settings)
    operations: dict[str, Callable[..., Any]] = {
        "load": models.load,
        "unload": models.unload,
        "start": models.start,
        "next": models.next,
        "drop": models.drop,
        "synthesize": models.synthesize,
    }
    send = threading.Lock()

    def answer(call: int, operation: str, args: tuple[Any, ...]) -> None:
        try:
            reply: tuple[int, bool, Any] = (call, True, operations[operation](*args))
        except EngineInputError as e:
            reply = (call, False, ("input", str(e), e.param))
        except Exception as e:  # noqa: BLE001 - every failure goes back to the caller
            reply = (call, False, ("error", f"{type(e).__name__}: {e}", None))
        with send:
            conn.send(reply)

    with ThreadPoolExecutor(thread_name_prefix="speech-worker") as pool:
        pool.submit(models.speaker)  # the service preloads its engine: so does its background twin
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            if message is None:
                break
            pool.submit(answer, *message)
