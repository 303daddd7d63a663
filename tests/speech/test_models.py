"""Settings from the environment and the offline Whisper base assembly (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from speech.engines import EngineInputError, resolve_voice
from speech.kokoro import ONNX_ALIASES, ONNX_VOICES
from speech.settings import SpeechSettings
from speech.whisper import BASE_MODEL_BYTES, assemble_base, resolve_model


def test_settings_read_prefixed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUNE_SPEECH_PORT", "9123")
    monkeypatch.setenv("JUNE_SPEECH_TTS_BACKEND", "torch")
    monkeypatch.setenv("JUNE_SPEECH_WHISPER_MODEL", "large-v3")
    s = SpeechSettings()
    assert (s.host, s.port, s.tts_backend, s.whisper_model) == ("127.0.0.1", 9123, "torch", "large-v3")
    assert s.max_upload_bytes == 25 * 1024 * 1024
    monkeypatch.setenv("JUNE_SPEECH_TTS_BACKEND", "espeak")
    with pytest.raises(ValueError):
        SpeechSettings()


def test_assemble_base_is_complete_and_idempotent(tmp_path: Path) -> None:
    target = assemble_base(tmp_path / "whisper-base")
    assert (target / "model.bin").stat().st_size == BASE_MODEL_BYTES
    assert {p.name for p in target.iterdir()} == {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}
    mtime = (target / "model.bin").stat().st_mtime_ns
    assert assemble_base(target) == target and (target / "model.bin").stat().st_mtime_ns == mtime
    assert resolve_model("large-v3") == "large-v3"
    assert (Path(resolve_model("tiny.en")) / "model.bin").is_file()


class _Voices:
    voices = ONNX_VOICES
    aliases = ONNX_ALIASES
    default_voice = "jf_alpha"


def test_resolve_voice_maps_openai_names() -> None:
    assert resolve_voice(_Voices(), None) == "jf_alpha"
    assert resolve_voice(_Voices(), "JM_KUMO") == "jm_kumo"
    for name in ("alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse"):
        assert resolve_voice(_Voices(), name) in ONNX_VOICES
    with pytest.raises(EngineInputError) as e:
        resolve_voice(_Voices(), "af_heart")
    assert e.value.param == "voice"
