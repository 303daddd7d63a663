"""`load_transcriber` / `load_synthesizer`: the speech models a `SpeechSettings` configures, built
(blocking; seconds: reading weights). Shared by the service (`speech.app`) and its background worker
process (`speech.worker`), which must not import the web app.
"""

from __future__ import annotations

from speech.engines import Synthesizer, Transcriber
from speech.settings import SpeechSettings

__all__ = ["load_synthesizer", "load_transcriber"]


def load_transcriber(settings: SpeechSettings, model: str) -> Transcriber:
    """faster-whisper with `model` and the configured device/decoding options (blocking; seconds)."""
    from speech.whisper import WhisperTranscriber

    return WhisperTranscriber(
        model,
        device=settings.device,
        compute_type=settings.compute_type,
        cpu_threads=settings.cpu_threads,
        beam_size=settings.beam_size,
        vad_filter=settings.vad_filter,
        no_speech_threshold=settings.no_speech_threshold,
        logprob_threshold=settings.logprob_threshold,
        compression_ratio_threshold=settings.compression_ratio_threshold,
        cache_dir=settings.cache_dir,
    )


def load_synthesizer(settings: SpeechSettings) -> Synthesizer:
    """The configured engine: Piper with `piper_voices`, or Kokoro on its backend (blocking; seconds)."""
    voice, aliases = settings.default_voice, settings.voice_aliases
    if settings.engine == "piper":
        from speech.piper import PiperSynthesizer

        return PiperSynthesizer(
            voices=settings.piper_voices, default_voice=voice, threads=settings.tts_threads, aliases=aliases
        )
    from speech.kokoro import BACKENDS

    factory = BACKENDS[settings.tts_backend]
    if settings.tts_backend == "torch":
        return factory(default_voice=voice, lang=settings.tts_lang, device=settings.device, aliases=aliases)
    return factory(default_voice=voice, lang=settings.tts_lang, threads=settings.tts_threads, aliases=aliases)
