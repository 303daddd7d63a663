"""The seams between the HTTP layer and the models: Transcriber / Synthesizer Protocols, their results,
and `Engines`, which runs the blocking model calls in worker threads behind a bounded queue.

Implementations: `speech.whisper.WhisperTranscriber`; `speech.piper.PiperSynthesizer` (the CPU
default), `speech.kokoro.OnnxSynthesizer` / `speech.kokoro.TorchSynthesizer`. Tests or other hosts may
pass any object with the same shape.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import time
from collections.abc import AsyncGenerator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

import anyio
import anyio.to_thread
import numpy as np
from opentelemetry import trace

from core import audio
from core.speakable import speakable
from core.text import lead_clause, sentences
from speech.guards import HallucinationGuard
from speech.models import ModelRegistry
from speech.scheduler import NEW, Priority, Scheduler, Ticket

log = logging.getLogger(__name__)

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


_MIX_PART = re.compile(r"^\s*([\w.-]+)\s*(?:\(\s*([0-9]*\.?[0-9]+)\s*\))?\s*$")


def language_tag(code: str) -> str:
    """A language code as espeak-ng or Piper write it ("en-us", "en_US") in BCP 47 ("en-US")."""
    lang, _, region = code.replace("_", "-").partition("-")
    return f"{lang.lower()}-{region.upper()}" if region else lang.lower()


def voice_table(
    voices: tuple[str, ...], aliases: Mapping[str, str], overrides: Mapping[str, str], default: str
) -> tuple[dict[str, str], str]:
    """An engine's OpenAI-name map with a deployment's `overrides` (OpenAI or any other name → a
    native voice or an OpenAI name) applied, and the native `default` voice (a native or OpenAI name).

    Raises ValueError naming the installed voices when a target or the default is not one of them.
    """
    natives = {v.lower(): v for v in voices}
    table = {k.lower(): v for k, v in aliases.items()}
    for name, target in overrides.items():
        native = natives.get(target.lower()) or table.get(target.lower())
        if native is None:
            raise ValueError(f"voice alias {name!r} → {target!r}: not an installed voice ({', '.join(voices)})")
        table[name.lower()] = native
    native_default = natives.get(default.lower()) or table.get(default.lower())
    if native_default is None:
        raise ValueError(f"default voice {default!r} is not one of {', '.join(voices)}")
    return table, native_default


def resolve_voice(synthesizer: Synthesizer, name: str | None) -> VoiceMix:
    """The weighted native voices for a request's `voice`.

    Accepts a native name, an OpenAI alias, None (→ default) or, where the engine `can_mix`, a mix
    "jf_alpha(2)+jf_nezumi(1)" (weights default to 1, normalized to sum 1). Case-insensitive.
    Raises EngineInputError(param="voice") for an unknown name, a malformed mix, or a mix of
    several voices on an engine that cannot mix.
    """
    if not name or not name.strip():
        return ((synthesizer.default_voice, 1.0),)
    natives = {v.lower(): v for v in synthesizer.voices}
    parts: list[tuple[str, float]] = []
    for part in name.split("+"):
        m = _MIX_PART.match(part)
        if m is None:
            raise EngineInputError(
                f"Malformed voice {name!r}; expected e.g. 'jf_alpha(2)+jf_nezumi(1)'.", param="voice"
            )
        key, weight = m.group(1).lower(), float(m.group(2) or 1)
        if not math.isfinite(weight):  # "1" followed by 400 zeros is inf, and inf / inf is NaN
            raise EngineInputError(f"Voice weight {m.group(2)[:20]!r}… in {name[:80]!r} is too large.", param="voice")
        native = natives.get(key) or synthesizer.aliases.get(key)
        if native is None:
            known = ", ".join([*synthesizer.voices, *synthesizer.aliases])
            raise EngineInputError(f"Unknown voice {m.group(1)!r}; available: {known}.", param="voice")
        parts.append((native, weight))
    if len(parts) > 1 and not synthesizer.can_mix:
        raise EngineInputError(
            f"Voice mixes such as {name[:80]!r} need an engine that can blend voices (Kokoro); this "
            f"deployment speaks with {synthesizer.engine}. Name one voice: {', '.join(synthesizer.voices)}.",
            param="voice",
        )
    total = sum(w for _, w in parts)
    if not math.isfinite(total):
        raise EngineInputError(f"Voice weights in {name[:80]!r} are too large.", param="voice")
    if total <= 0:
        raise EngineInputError(f"Voice weights in {name!r} must add up to more than 0.", param="voice")
    return tuple((n, w / total) for n, w in parts)


@dataclass
class Engines:
    """The model registries plus the scheduler in front of them; stored on `app.state`.

    A request is admitted (`scheduler.admit()`, Busy when full) and passes its Ticket to
    `transcribe_stream` / `speak_stream`, which hold a model slot from before decoding to the last
    segment or sentence (see speech.scheduler). Model calls run in worker threads; the async methods
    never block the loop.
    """

    transcribers: ModelRegistry[Transcriber]
    synthesizers: ModelRegistry[Synthesizer]
    default_model: str
    scheduler: Scheduler = field(default_factory=lambda: Scheduler(1, 8))
    max_audio_s: float | None = None
    """Longest audio to transcribe, seconds (audio.decode's `max_seconds`); None: no limit."""
    max_speech_s: float | None = None
    """Longest speech to synthesize per request, seconds, estimated from phonemes and speed; None: no limit."""
    lead_clause: bool = True
    """Synthesize a reply's first clause on its own (see `core.text.lead_clause`) so its first audio comes sooner."""
    guard: HallucinationGuard = field(default_factory=HallucinationGuard)
    preload_failures: dict[str, str] = field(default_factory=dict)
    """Model name → why preloading it failed ("ExceptionType: message"); the service then stops."""
    tracer: trace.Tracer = field(default_factory=lambda: trace.get_tracer("speech"))

    def preloads(self) -> list[tuple[ModelRegistry[Any], str]]:
        """(registry, name) of each model to load at startup and keep loaded: the registries' pinned
        models, Whisper first, each registry in configuration order."""
        return [(r, n) for r in (self.transcribers, self.synthesizers) for n in r.names if n in r.pinned]

    def admit(self, priority: Priority = NEW) -> Ticket:
        """A place in the queue (see `Scheduler.admit`: FINISHING for speech, NEW for transcriptions);
        raises Busy when full."""
        return self.scheduler.admit(priority)

    def model_name(self, requested: str | None) -> str:
        """The configured Whisper model for a request's `model` (OpenAI names → the default).

        Raises EngineInputError(param="model") for a name that is not configured.
        """
        if not requested or requested in OPENAI_STT_MODELS:
            return self.default_model
        if requested in self.transcribers.names:
            return requested
        known = ", ".join([*self.transcribers.names, *sorted(OPENAI_STT_MODELS)])
        raise EngineInputError(f"Unknown model {requested!r}; available: {known}.", param="model")

    async def synthesizer(self) -> Synthesizer:
        """The (only) configured synthesizer, loaded if needed."""
        return await self.synthesizers.get(self.synthesizers.names[0])

    async def transcribe_stream(
        self, data: bytes, options: TranscribeOptions, ticket: Ticket
    ) -> AsyncGenerator[Segment | Transcript]:
        """Wait for `ticket`'s model slot, decode `data` and yield each kept Segment as Whisper
        decodes it, then the Transcript. The caller releases `ticket`.

        Hallucinated segments (see speech.guards) are dropped; ids are renumbered 0… over kept ones.
        Raises audio.AudioDecodeError for undecodable bytes, audio.AudioTooLong past `max_audio_s`,
        EngineInputError for bad options — all before the first yield.
        """
        name = self.model_name(options.model)
        await ticket.start()
        samples = await anyio.to_thread.run_sync(lambda: audio.decode(data, WHISPER_RATE, max_seconds=self.max_audio_s))
        duration = round(len(samples) / WHISPER_RATE, 3)
        if not len(samples):
            yield Transcript("", options.language or "", 0.0, task=options.task)
            return
        model = await self.transcribers.get(name)
        self.transcribers.acquire(name)
        guard = replace(self.guard)  # a fresh one per transcription (it remembers the previous segment)
        kept: list[Segment] = []
        start = time.perf_counter()
        # Not a "current" span: this generator may be resumed from another task's context.
        span = self.tracer.start_span(
            "speech.transcribe", attributes={"model": name, "audio.seconds": duration, "task": options.task}
        )
        try:
            language, segments = await anyio.to_thread.run_sync(model.start, samples, options)
            done = object()
            while (seg := await anyio.to_thread.run_sync(next, segments, done)) is not done:
                assert isinstance(seg, Segment)
                if (ok := guard.check(seg)) is None:
                    why = guard.reason(seg) or guard.loop_reason(seg)
                    log.info("dropped segment %r as hallucination (%s)", seg.text, why)
                    continue
                ok = _renumber(ok, len(kept))
                kept.append(ok)
                yield ok
        finally:
            self.transcribers.release(name)
            span.end()
        elapsed = time.perf_counter() - start
        self.scheduler.metrics.observe("stt", name, duration, elapsed)
        log.info(
            "transcribed %.2f s with %s in %.2f s (%.1fx real time)",
            duration,
            name,
            elapsed,
            duration / max(elapsed, 1e-6),
        )
        text = " ".join(s.text for s in kept if s.text)
        yield Transcript(text, language, duration, tuple(kept), task=options.task)

    async def transcribe(self, data: bytes, options: TranscribeOptions, ticket: Ticket) -> Transcript:
        """The whole Transcript of `data` (see `transcribe_stream`)."""
        async for item in self.transcribe_stream(data, options, ticket):
            if isinstance(item, Transcript):
                return item
        raise AssertionError("transcribe_stream ended without a Transcript")

    async def plan_speech(
        self, text: str, voice: str | None, speed: float = 1.0
    ) -> tuple[Synthesizer, VoiceMix, list[str]]:
        """Resolve `voice`, cut the speakable part of `text` into sentences and bound the cost.

        Raises EngineInputError for an unknown voice (param "voice"), nothing to speak ("input"), or
        speech estimated longer than `max_speech_s` ("input"): phonemes / phonemes_per_second / speed,
        so digits and symbols that espeak-ng reads out as many words count as what they cost. The
        rate is the synthesizer's `phonemes_per_second`.
        """
        synth = await self.synthesizer()
        mix = resolve_voice(synth, voice)
        pieces = sentences(speakable(text))
        if self.lead_clause:
            pieces = lead_clause(pieces)
        if not pieces:
            raise EngineInputError("input has nothing to speak (only markup, code, links or emoji).", param="input")
        if self.max_speech_s is not None:
            phonemes = await anyio.to_thread.run_sync(lambda: sum(synth.phonemes(p) for p in pieces))
            seconds = phonemes / synth.phonemes_per_second / speed
            if seconds > self.max_speech_s:
                raise EngineInputError(
                    f"input would take about {seconds:.0f} s to speak at speed {speed:g} ({phonemes} phonemes: "
                    f"numbers and symbols are read out as words); the limit is {self.max_speech_s:.0f} s. "
                    "Send it in shorter parts.",
                    param="input",
                )
        return synth, mix, pieces

    async def speak_stream(
        self,
        synth: Synthesizer,
        mix: VoiceMix,
        pieces: list[str],
        *,
        speed: float,
        fmt: str,
        ticket: Ticket,
        all_cores: bool = False,
    ) -> AsyncGenerator[bytes]:
        """Wait for `ticket`'s model slot, then synthesize `pieces` one by one and yield the encoded
        bytes of each as soon as it is ready. The caller releases `ticket`.

        The chunks form one continuous `fmt` stream (audio.StreamEncoder). A piece other than the
        first that cannot be spoken is skipped (logged); the first raises EngineInputError. A `speed`
        outside the synthesizer's `native_speeds` is reached by synthesizing at the nearest native
        speed and time-stretching the audio (audio.time_stretch: same pitch). The audio is at
        OUTPUT_RATE whatever the engine's own rate. `all_cores` goes to `Synthesizer.synthesize`.
        """
        low, high = synth.native_speeds
        native = min(max(speed, low), high)
        stretch = speed / native
        encoder: audio.StreamEncoder | None = None
        voice_name = "+".join(f"{n}({w:.2f})" for n, w in mix)
        await ticket.start()
        try:
            for i, piece in enumerate(pieces):
                start = time.perf_counter()
                with self.tracer.start_as_current_span(
                    "speech.synthesize", attributes={"voice": voice_name, "chars": len(piece)}
                ):
                    try:
                        speak = functools.partial(synth.synthesize, piece, voice=mix, speed=native, all_cores=all_cores)
                        speech = await anyio.to_thread.run_sync(lambda: _output(speak(), stretch))  # noqa: B023  # awaited in this iteration
                    except EngineInputError:
                        if i == 0:
                            raise
                        log.warning("skipped unspeakable sentence %r", piece)
                        continue
                elapsed = time.perf_counter() - start
                self.scheduler.metrics.observe("tts", synth.engine, speech.duration, elapsed)
                encoder = encoder or audio.StreamEncoder(fmt, speech.sample_rate)
                if chunk := await anyio.to_thread.run_sync(encoder.feed, speech.samples):
                    yield chunk
            if encoder is not None and (tail := await anyio.to_thread.run_sync(encoder.close)):
                yield tail
        finally:
            if encoder is not None:
                encoder.close()  # no-op after a normal end; frees FFmpeg state when the client went away


def _output(speech: Speech, stretch: float) -> Speech:
    """`speech` played `stretch` times faster (same pitch), at OUTPUT_RATE."""
    samples = audio.time_stretch(speech.samples, speech.sample_rate, stretch) if stretch != 1.0 else speech.samples
    return Speech(audio.resample(samples, speech.sample_rate, OUTPUT_RATE), OUTPUT_RATE)


def _renumber(seg: Segment, i: int) -> Segment:
    return seg if seg.id == i else replace(seg, id=i)
