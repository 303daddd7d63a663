"""The seams between the HTTP layer and the models: Transcriber / Synthesizer Protocols, their results,
and `Engines`, which runs the blocking model calls in worker threads behind one bounded limiter.

Implementations: `speech.whisper.WhisperTranscriber`, `speech.kokoro.OnnxSynthesizer` /
`speech.kokoro.TorchSynthesizer`. Tests or other hosts may pass any object with the same shape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import anyio
import anyio.to_thread
import numpy as np

from speech import audio

log = logging.getLogger(__name__)

WHISPER_RATE = 16000
"""Sample rate (Hz) every Transcriber takes."""


class EngineInputError(ValueError):
    """A request value the engine cannot use (unknown language, text with nothing to speak…).

    `param` names the request field at fault, for the OpenAI error body.
    """

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Segment:
    """One transcribed stretch: `start`/`end` in seconds from the start of the audio."""

    id: int
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    """A transcription: `text` joined from `segments`, detected or given `language` (ISO 639-1),
    `duration` of the input audio in seconds."""

    text: str
    language: str
    duration: float
    segments: tuple[Segment, ...] = ()


@dataclass(frozen=True)
class Speech:
    """Synthesized audio: float32 mono `samples`, shape (n,), at `sample_rate` Hz."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate


@runtime_checkable
class Transcriber(Protocol):
    """Speech to text. Blocking and CPU/GPU-bound: call from a worker thread."""

    name: str
    """The model's name, for logs and /health."""

    def transcribe(
        self,
        samples: np.ndarray,
        *,
        language: str | None = None,
        prompt: str | None = None,
        temperature: float | None = None,
    ) -> Transcript:
        """Transcribe float32 mono `samples` at 16 kHz. `language` None means detect.

        Raises EngineInputError for an unusable `language`.
        """
        ...


@runtime_checkable
class Synthesizer(Protocol):
    """Text to speech. Blocking and CPU/GPU-bound: call from a worker thread."""

    voices: tuple[str, ...]
    """Native voice names, e.g. ("jf_alpha", …)."""
    aliases: Mapping[str, str]
    """OpenAI voice name → native voice name."""
    default_voice: str
    """Native voice used when a request names none."""

    def synthesize(self, text: str, *, voice: str, speed: float = 1.0) -> Speech:
        """Speak `text` with native `voice` at `speed` (1.0 normal).

        Raises EngineInputError when `text` has nothing speakable.
        """
        ...


def resolve_voice(synthesizer: Synthesizer, name: str | None) -> str:
    """The native voice for a request's `voice`: a native name, an OpenAI alias, or None → default.

    Case-insensitive. Raises EngineInputError(param="voice") for an unknown name.
    """
    if not name:
        return synthesizer.default_voice
    key = name.strip().lower()
    if key in synthesizer.voices:
        return key
    if key in synthesizer.aliases:
        return synthesizer.aliases[key]
    known = ", ".join([*synthesizer.voices, *synthesizer.aliases])
    raise EngineInputError(f"Unknown voice {name!r}; available: {known}.", param="voice")


@dataclass
class Engines:
    """The loaded models plus the limiter that bounds concurrent model calls; stored on `app.state`.

    The async methods never block the event loop: decoding, inference and encoding run in threads.
    """

    transcriber: Transcriber
    synthesizer: Synthesizer
    max_concurrency: int = 1
    limiter: anyio.CapacityLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = anyio.CapacityLimiter(self.max_concurrency)

    async def transcribe(
        self,
        data: bytes,
        *,
        language: str | None = None,
        prompt: str | None = None,
        temperature: float | None = None,
    ) -> Transcript:
        """Decode `data` (any container FFmpeg reads) and transcribe it.

        Raises audio.AudioDecodeError for undecodable bytes, EngineInputError for bad options.
        """
        samples = await anyio.to_thread.run_sync(audio.decode, data, WHISPER_RATE)
        if not len(samples):
            return Transcript(text="", language=language or "", duration=0.0)

        def run() -> Transcript:
            return self.transcriber.transcribe(samples, language=language, prompt=prompt, temperature=temperature)

        start = time.perf_counter()
        result = await anyio.to_thread.run_sync(run, limiter=self.limiter)
        elapsed = time.perf_counter() - start
        log.info(
            "transcribed %.2f s of audio in %.2f s (RTF %.2f, %.1fx real time)",
            result.duration, elapsed, elapsed / max(result.duration, 1e-6), result.duration / max(elapsed, 1e-6),
        )
        return result

    async def speak(self, text: str, *, voice: str | None, speed: float, fmt: str) -> bytes:
        """Synthesize `text` with `voice` (native, OpenAI alias, or None) and encode as `fmt`.

        Raises EngineInputError for an unknown voice or unspeakable text.
        """
        native = resolve_voice(self.synthesizer, voice)

        def run() -> Speech:
            return self.synthesizer.synthesize(text, voice=native, speed=speed)

        start = time.perf_counter()
        speech = await anyio.to_thread.run_sync(run, limiter=self.limiter)
        elapsed = time.perf_counter() - start
        log.info(
            "synthesized %.2f s of audio (%d chars, %s) in %.2f s (RTF %.2f)",
            speech.duration, len(text), native, elapsed, elapsed / max(speech.duration, 1e-6),
        )
        return await anyio.to_thread.run_sync(audio.encode, speech.samples, speech.sample_rate, fmt)
