"""The vLLM command line per preset, and `python -m june.llm` refusing a GPU preset without a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from june.llm.preflight import detect_gpus
from june.llm.presets import CPU_PRESET, GPU_PRESET, get_preset
from june.llm.server import vllm_command
from june.llm.settings import LIVE_SIGNAL_ENV, LLMSettings


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_cpu_command_has_the_offline_flags_and_env() -> None:
    s = LLMSettings(_env_file=None, host="0.0.0.0", port=9000, cpu_kv_cache_gib=3)
    argv, env = vllm_command(s, get_preset(CPU_PRESET), "/models/hf", base_env={"PATH": "/bin"}, native_bf16=False)
    assert argv[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    assert flag(argv, "--model") == "/models/hf"
    assert flag(argv, "--served-model-name") == "qwen2.5-coder-0.5b-instruct"
    assert (flag(argv, "--host"), flag(argv, "--port")) == ("0.0.0.0", "9000")
    assert flag(argv, "--max-model-len") == "4096" and flag(argv, "--dtype") == "float32"
    assert flag(argv, "--tool-call-parser") == "hermes"
    assert {"--enforce-eager", "--enable-auto-tool-choice", "--enable-prefix-caching"} <= set(argv)
    assert "--reasoning-parser" not in argv and "--gpu-memory-utilization" not in argv
    assert json.loads(flag(argv, "--override-generation-config"))["temperature"] == 0.7
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "3" and env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    assert env["JUNE_LLM_CPU_IDLE_SPIN_MS"] == "20"  # june.llm.vllm_plugin
    assert env["HF_HUB_OFFLINE"] == "1" and env["PATH"] == "/bin"


@pytest.mark.parametrize(
    ("cpu_dtype", "native_bf16", "expected"),
    [
        ("auto", True, "bfloat16"),  # AVX512-BF16 / AMX / Arm BF16: half the bytes per token
        ("auto", False, "float32"),  # emulated bf16 would be slower than float32
        ("float32", True, "float32"),
        ("bfloat16", False, "bfloat16"),
    ],
)
def test_cpu_dtype_follows_the_cpu_unless_set(cpu_dtype: str, native_bf16: bool, expected: str) -> None:
    s = LLMSettings(_env_file=None, cpu_dtype=cpu_dtype)
    argv, _ = vllm_command(s, get_preset(CPU_PRESET), "/models/hf", base_env={}, native_bf16=native_bf16)
    assert flag(argv, "--dtype") == expected
    gpu, _ = vllm_command(s, get_preset(GPU_PRESET), "x", base_env={}, native_bf16=native_bf16)
    assert flag(gpu, "--dtype") == "auto"  # a GPU preset keeps its own


def test_gpu_command_uses_hub_id_parsers_and_settings() -> None:
    s = LLMSettings(
        _env_file=None,
        max_model_len=16384,
        gpu_memory_utilization=0.85,
        served_model_name="june",
        extra_args="--max-num-seqs 8 --kv-cache-dtype 'fp8'",
    )
    preset = get_preset(GPU_PRESET)
    argv, env = vllm_command(s, preset, preset.model, base_env={})
    assert flag(argv, "--model") == preset.model
    assert flag(argv, "--served-model-name") == "june"
    assert flag(argv, "--max-model-len") == "16384" and flag(argv, "--gpu-memory-utilization") == "0.85"
    assert flag(argv, "--reasoning-parser") == "qwen3" and flag(argv, "--tool-call-parser") == "hermes"
    assert "--enforce-eager" not in argv
    assert argv[-4:] == ["--max-num-seqs", "8", "--kv-cache-dtype", "fp8"]
    assert (
        "VLLM_CPU_KVCACHE_SPACE" not in env and "HF_HUB_OFFLINE" not in env and "JUNE_LLM_CPU_IDLE_SPIN_MS" not in env
    )


def test_coder_preset_uses_the_qwen3_coder_tool_parser() -> None:
    argv, _ = vllm_command(LLMSettings(_env_file=None), get_preset("qwen3-coder-30b-a3b"), "x", base_env={})
    assert flag(argv, "--tool-call-parser") == "qwen3_coder" and "--reasoning-parser" not in argv
    assert flag(argv, "--served-model-name") == "Qwen/Qwen3-Coder-30B-A3B-Instruct"


@pytest.mark.skipif(bool(detect_gpus()), reason="this machine has an NVIDIA GPU")
@pytest.mark.parametrize("model", [GPU_PRESET, "qwen3-30b-a3b-thinking-2507"])
def test_gpu_preset_on_cpu_machine_exits_fast_with_a_message(model: str) -> None:
    env = {**os.environ, "JUNE_LLM_MODEL": model, "JUNE_LLM_PORT": "1"}
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "june.llm"], check=False, env=env, capture_output=True, text=True, timeout=60
    )
    elapsed = time.monotonic() - start
    assert out.returncode == 2, out.stderr
    assert f"preset {model} needs an NVIDIA GPU" in out.stderr
    assert "Traceback" not in out.stderr
    assert "starting vLLM" not in out.stderr + out.stdout  # serve() stopped before building the command
    assert elapsed < 15


def test_unknown_preset_lists_the_valid_ones() -> None:
    env = {**os.environ, "JUNE_LLM_MODEL": "gpt-5"}
    out = subprocess.run(
        [sys.executable, "-m", "june.llm"], check=False, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "unknown LLM preset 'gpt-5'" in out.stderr and CPU_PRESET in out.stderr


def test_the_live_window_reaches_vllm_on_cpu_only() -> None:
    """With a live window file, a CPU vLLM runs june's scheduler and gets the file's path (its plugin reads
    it too); a GPU vLLM keeps its own (async) scheduler."""
    s = LLMSettings(_env_file=None, live_signal="/run/june-live")
    argv, env = vllm_command(s, get_preset(CPU_PRESET), "/models/hf", base_env={}, native_bf16=False)
    assert flag(argv, "--scheduler-cls") == "june.llm.live_scheduler.LiveFirstScheduler"
    assert env[LIVE_SIGNAL_ENV] == "/run/june-live"
    preset = get_preset(GPU_PRESET)
    argv, env = vllm_command(s, preset, preset.model, base_env={})
    assert "--scheduler-cls" not in argv and LIVE_SIGNAL_ENV not in env
    argv, env = vllm_command(LLMSettings(_env_file=None, live_signal=""), get_preset(CPU_PRESET), "/m", base_env={})
    assert "--scheduler-cls" not in argv and LIVE_SIGNAL_ENV not in env  # "" turns it off
