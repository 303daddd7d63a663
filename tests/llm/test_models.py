"""Preparing the offline Qwen2.5-Coder-0.5B: join, verify, convert once, reuse."""

from __future__ import annotations

import hashlib
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
    with pytest.raises(ModelUnavailable, match="june-no-such-part1, june-no-such-part2.*llm-cpu"):
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
