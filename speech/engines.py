"""The seams between the HTTP layer and the models: the Transcriber / Synthesizer Protocols, their
results (Segment, Transcript, Speech), EngineInputError and the rates and names every engine shares.

Implementations: `speech.whisper.WhisperTranscriber`; `speech.piper.PiperSynthesizer` (the CPU
default), `speech.kokoro.OnnxSynthesizer` / `speech.kokoro.TorchSynthesizer`. Tests or other hosts may
pass any object with the same shape. `speech.runtime.Engines` runs them; `speech.voices` resolves a
request's voice name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

WHISPER_RATE = 16000
"""Sample rate (Hz) every Transcriber takes."""

OUTPUT_RATE = 24000
"""Sample rate (Hz) of all synthesized audio: OpenAI's "pcm" is 24 kHz, and the realtime session and
the bots read it so. A synthesizer with another rate (Piper: 22.05 kHz) is resampled to it."""

OPENAI_VOICES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse", "marin", "cedar",
)  # fmt: skip
"""OpenAI's voice names (tts-1 and gpt-4o-mini-tts, https://platform.openai.com/docs/guides/text-to-speech):
every synthesizer maps each of them onto one of its own voices."""

OPENAI_STT_MODELS = frozenset({"whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-4o-transcribe-diarize"})
"""OpenAI transcription model names: all mean the configured default Whisper model."""

VoiceMix = tuple[tuple[str, float], ...]
"""Native voice names with weights summing to 1, e.g. (("jf_alpha", 0.667), ("jf_nezumi", 0.333))."""


class EngineInputError(ValueError):
    """A request value the engine cannot use (unknown language, text with nothing to speak…).

    `param` names the request field at fault, for the OpenAI error body.
    """

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Word:
    """One word with `start`/`end` in seconds and Whisper's `probability`."""

    word: str
    start: float
    end: float
    probability: float = 1.0


@dataclass(frozen=True)
class Segment:
    """One transcribed stretch: `start`/`end` in seconds from the start of the audio, plus Whisper's
    decoding scores (OpenAI's verbose_json segment fields)."""

    id: int
    start: float
    end: float
    text: str
    seek: int = 0
    tokens: tuple[int, ...] = ()
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 1.0
    no_speech_prob: float = 0.0
    words: tuple[Word, ...] = ()
    speech_s: float | None = None
    """Seconds of [start, end] that the voice activity detector marks as speech; None when not
    measured. june's own field (the hallucination guard uses it), not sent to clients."""


@dataclass(frozen=True)
class Transcript:
    """A transcription: `text` joined from `segments`, detected or given `language` (ISO 639-1),
    `duration` of the input audio in seconds, `task` "transcribe" or "translate"."""

    text: str
    language: str
    duration: float
    segments: tuple[Segment, ...] = ()
    task: str = "transcribe"


@dataclass(frozen=True)
class Speech:
    """Synthesized audio: float32 mono `samples`, shape (n,), at `sample_rate` Hz."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class TranscribeOptions:
    """What a transcription request asks for; `model` None means the default."""

    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    temperature: float | None = None
    task: Literal["transcribe", "translate"] = "transcribe"
    word_timestamps: bool = False


@runtime_checkable
class Transcriber(Protocol):
    """Speech to text. Blocking and CPU/GPU-bound: call from a worker thread."""

    name: str
    """The model's name, for logs and /v1/models."""

    def start(self, samples: np.ndarray, options: TranscribeOptions) -> tuple[str, Iterator[Segment]]:
        """Begin transcribing float32 mono `samples` at 16 kHz: returns the (given or detected)
        language and a lazy iterator that decodes one segment per `next()` (each call blocks).

        Raises EngineInputError for an unusable `language` or `task` (param names the field).
        """
        ...


@runtime_checkable
class Synthesizer(Protocol):
    """Text to speech. Blocking and CPU/GPU-bound: call from a worker thread."""

    # Read-only members: an engine may hold them as plain attributes of any narrower type (a dict
    # for a Mapping), which a settable Protocol attribute would refuse.
    @property
    def engine(self) -> str:
        """The engine's name ("piper", "kokoro"): /v1/models and /v1/audio/voices list it, metrics label by it."""
        ...

    @property
    def voices(self) -> tuple[str, ...]:
        """Native voice names, e.g. ("en_US-joe-medium",) or ("jm_kumo", …)."""
        ...

    @property
    def languages(self) -> Mapping[str, str]:
        """Native voice name → the language (BCP 47, e.g. "en-US") it speaks."""
        ...

    @property
    def aliases(self) -> Mapping[str, str]:
        """OpenAI voice name (each of OPENAI_VOICES) → native voice name."""
        ...

    @property
    def default_voice(self) -> str:
        """Native voice used when a request names none."""
        ...

    @property
    def native_speeds(self) -> tuple[float, float]:
        """(lowest, highest) `speed` the model takes; `Engines` time-stretches the audio beyond them."""
        ...

    @property
    def can_mix(self) -> bool:
        """Whether `synthesize` takes a mix of several voices (Kokoro blends style vectors; Piper cannot)."""
        ...

    @property
    def phonemes_per_second(self) -> float:
        """Phonemes (as `phonemes` counts them) spoken per second at speed 1, a little under the measured
        rate so that the estimated duration of a request errs long (the speech-cost limit)."""
        ...

    def phonemes(self, text: str) -> int:
        """The phonemes (or, failing a phonemizer, characters) `text` makes: the synthesis cost."""
        ...

    def synthesize(self, text: str, *, voice: VoiceMix, speed: float = 1.0, all_cores: bool = False) -> Speech:
        """Speak `text` with the weighted `voice` mix (one voice unless `can_mix`) at `speed` (1.0
        normal, within `native_speeds`); float32 mono at the engine's own rate (`Engines` resamples it
        to OUTPUT_RATE). `all_cores`: use every core for this call (sooner on an idle box; a GPU
        backend ignores it).

        Raises EngineInputError when `text` has nothing speakable.
        """
        ...
