"""`Engines`: the speech models at run time. The model registries behind the scheduler, with each
blocking model call (decode, transcribe, synthesize, encode) in a worker thread of the request's
lane (`speech.lanes`: live at the process's priority, other classes on lower-priority threads, their
Whisper and TTS calls in the background process of `speech.worker`), so the event loop never waits
on a model.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import anyio.to_thread
from opentelemetry import trace

from core import audio
from core.priority import DEFAULT_CLASS, RequestClass
from core.speakable import speakable
from core.text import lead_clause, sentences
from speech.engines import (
    OPENAI_STT_MODELS,
    OUTPUT_RATE,
    WHISPER_RATE,
    EngineInputError,
    Segment,
    Speech,
    Synthesizer,
    TranscribeOptions,
    Transcriber,
    Transcript,
    VoiceMix,
)
from speech.guards import HallucinationGuard
from speech.lanes import Lanes
from speech.models import ModelRegistry
from speech.scheduler import NEW, Priority, Scheduler, Ticket
from speech.voices import resolve_voice
from speech.worker import BackgroundWorker

log = logging.getLogger(__name__)


@dataclass
class Engines:
    """The model registries plus the scheduler in front of them; stored on `app.state`.

    A request is admitted (`scheduler.admit(cls, priority)`, Busy when its class is full) and passes
    its Ticket to `transcribe_stream` / `speak_stream`, which hold a model slot from before decoding
    to the last segment or sentence, giving it up between two when higher-class work waits (see
    speech.scheduler). Model calls run in worker threads of the ticket's lane (`lanes`); the async
    methods never block the loop.
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
    lanes: Lanes = field(default_factory=lambda: Lanes(0))
    background_transcribers: ModelRegistry[Transcriber] | None = None
    """The same Whisper models as `transcribers`, in `worker`'s process, loaded there on first use
    and unloaded after the idle TTL: non-live transcriptions use these when the background lane
    exists; None: `transcribers` for all."""
    worker: BackgroundWorker | None = None
    """The process that runs non-live Whisper (`background_transcribers`) and TTS calls, stopped
    while the live window is open (speech.worker); None: they run in this process."""

    def preloads(self) -> list[tuple[ModelRegistry[Any], str]]:
        """(registry, name) of each model to load at startup and keep loaded: the registries' pinned
        models, Whisper first, each registry in configuration order."""
        return [(r, n) for r in (self.transcribers, self.synthesizers) for n in r.names if n in r.pinned]

    def admit(self, cls: RequestClass = DEFAULT_CLASS, priority: Priority = NEW) -> Ticket:
        """A place in the queue for a request of class `cls` (see `Scheduler.admit`: FINISHING for
        speech, NEW for transcriptions); raises Busy when the class's queue is full."""
        return self.scheduler.admit(cls, priority)

    def _whisper(self, cls: RequestClass) -> ModelRegistry[Transcriber]:
        """The registry whose instances serve `cls`: background ones off the live lane."""
        if self.background_transcribers is not None and self.lanes.background(cls):
            return self.background_transcribers
        return self.transcribers

    def _synthesize(self, cls: RequestClass, synth: Synthesizer) -> Callable[..., Speech]:
        """Who speaks for `cls`: the background process off the live lane (the same engine), else `synth`."""
        if self.worker is not None and self.lanes.background(cls):
            return self.worker.synthesize
        return synth.synthesize

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

        After each segment, higher-class work may take the slot (`Ticket.checkpoint`); the transcription
        resumes where it stopped once it gets a slot back. Non-live work runs on the background lane
        (`lanes`, `background_transcribers`).
        Hallucinated segments (see speech.guards) are dropped; ids are renumbered 0… over kept ones.
        Raises audio.AudioDecodeError for undecodable bytes, audio.AudioTooLong past `max_audio_s`,
        EngineInputError for bad options — all before the first yield.
        """
        name = self.model_name(options.model)
        cls = ticket.cls
        await ticket.start()
        samples = await self.lanes.run(cls, lambda: audio.decode(data, WHISPER_RATE, max_seconds=self.max_audio_s))
        duration = round(len(samples) / WHISPER_RATE, 3)
        if not len(samples):
            yield Transcript("", options.language or "", 0.0, task=options.task)
            return
        registry = self._whisper(cls)
        model = await registry.get(name)
        registry.acquire(name)
        guard = replace(self.guard)  # a fresh one per transcription (it remembers the previous segment)
        kept: list[Segment] = []
        start = time.perf_counter()
        # Not a "current" span: this generator may be resumed from another task's context.
        span = self.tracer.start_span(
            "speech.transcribe",
            attributes={"model": name, "audio.seconds": duration, "task": options.task, "class": cls},
        )
        try:
            language, segments = await self.lanes.run(cls, model.start, samples, options)
            done = object()
            while (seg := await self.lanes.run(cls, next, segments, done)) is not done:
                assert isinstance(seg, Segment)
                if (ok := guard.check(seg)) is None:
                    why = guard.reason(seg) or guard.loop_reason(seg)
                    log.info("dropped segment %r as hallucination (%s)", seg.text, why)
                else:
                    ok = _renumber(ok, len(kept))
                    kept.append(ok)
                    yield ok
                # Higher-class work may take the slot before the next segment; the decoder's state
                # waits in `segments` meanwhile.
                await ticket.checkpoint()
        finally:
            registry.release(name)
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
        bytes of each as soon as it is ready, giving the slot to higher-class work between two pieces
        when it waits (`Ticket.checkpoint`). The caller releases `ticket`.

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
        cls = ticket.cls
        await ticket.start()
        try:
            for i, piece in enumerate(pieces):
                if i:
                    await ticket.checkpoint()  # higher-class work may take the slot between sentences
                start = time.perf_counter()
                with self.tracer.start_as_current_span(
                    "speech.synthesize", attributes={"voice": voice_name, "chars": len(piece), "class": cls}
                ):
                    try:
                        speak = functools.partial(
                            self._synthesize(cls, synth), piece, voice=mix, speed=native, all_cores=all_cores
                        )
                        speech = await self.lanes.run(cls, lambda: _output(speak(), stretch))  # noqa: B023  # awaited in this iteration
                    except EngineInputError:
                        if i == 0:
                            raise
                        log.warning("skipped unspeakable sentence %r", piece)
                        continue
                elapsed = time.perf_counter() - start
                self.scheduler.metrics.observe("tts", synth.engine, speech.duration, elapsed)
                encoder = encoder or audio.StreamEncoder(fmt, speech.sample_rate)
                if chunk := await self.lanes.run(cls, encoder.feed, speech.samples):
                    yield chunk
            if encoder is not None and (tail := await self.lanes.run(cls, encoder.close)):
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
