"""Preflight as a pure function of presets, GPUs (as data) and settings."""

from __future__ import annotations

import pytest

from june.llm.preflight import (
    Fit,
    GpuInfo,
    PreflightError,
    arch_supported,
    check_fit,
    cpu_has_bf16,
    parse_nvidia_smi,
    resolve_preset,
)
from june.llm.presets import CPU_PRESET, GPU_PRESET, PRESETS, get_preset
from june.llm.settings import LLMSettings

RTX_4090 = GpuInfo(0, "NVIDIA GeForce RTX 4090", total_gib=23.99, free_gib=23.5, compute_capability=(8, 9))
H100 = GpuInfo(0, "NVIDIA H100 80GB HBM3", total_gib=79.6, free_gib=79.0, compute_capability=(9, 0))
T4 = GpuInfo(0, "Tesla T4", total_gib=15.0, free_gib=14.6, compute_capability=(7, 5))
V100_32G = GpuInfo(0, "Tesla V100-SXM2-32GB", total_gib=32.0, free_gib=31.5, compute_capability=(7, 0))


def settings(**kw) -> LLMSettings:
    return LLMSettings(_env_file=None, **kw)


def test_gpu_preset_without_gpu_is_refused_and_never_falls_back_to_cpu() -> None:
    fit = check_fit(get_preset(GPU_PRESET), [], settings())
    assert not fit.ok
    assert "needs an NVIDIA GPU" in fit.message and CPU_PRESET in fit.message
    with pytest.raises(PreflightError, match="needs an NVIDIA GPU"):
        fit.raise_for_misfit()


@pytest.mark.parametrize("name", [n for n, p in PRESETS.items() if p.device == "cuda"])
def test_every_gpu_preset_refuses_a_cpu_only_machine(name: str) -> None:
    assert not check_fit(get_preset(name), [], settings()).ok


def test_old_compute_capability_is_refused() -> None:
    fit = check_fit(get_preset(GPU_PRESET), [V100_32G], settings())
    assert not fit.ok
    assert "compute capability 8.0" in fit.message and "7.0" in fit.message


def test_too_little_memory_says_needed_free_and_what_to_lower() -> None:
    small = GpuInfo(0, "NVIDIA RTX A4000", total_gib=16.0, free_gib=15.5, compute_capability=(8, 6))
    fit = check_fit(get_preset(GPU_PRESET), [small], settings())
    assert not fit.ok
    assert f"needs {fit.need_gib:.1f} GiB" in fit.message and "15.5 GiB free" in fit.message
    assert "JUNE_LLM_MAX_MODEL_LEN" not in fit.message  # weights alone do not fit: a shorter context cannot help
    assert fit.need_gib > fit.usable_gib


def test_long_context_on_a_24gb_gpu_suggests_a_context_that_fits() -> None:
    fit = check_fit(get_preset(GPU_PRESET), [RTX_4090], settings(max_model_len=131072))
    assert not fit.ok
    assert "lower JUNE_LLM_MAX_MODEL_LEN to" in fit.message
    suggested = int(fit.message.split("lower JUNE_LLM_MAX_MODEL_LEN to ")[1].split()[0])
    assert 2048 <= suggested < 131072
    assert check_fit(get_preset(GPU_PRESET), [RTX_4090], settings(max_model_len=suggested)).ok


def test_bf16_preset_does_not_fit_24gb_but_fits_h100() -> None:
    preset = get_preset("qwen3-30b-a3b-instruct-2507")
    assert not check_fit(preset, [RTX_4090], settings()).ok
    assert check_fit(preset, [H100], settings()).ok


def test_memory_used_by_others_below_the_utilization_target_is_refused() -> None:
    busy = GpuInfo(0, "NVIDIA H100", total_gib=79.6, free_gib=40.0, compute_capability=(9, 0))
    fit = check_fit(get_preset(GPU_PRESET), [busy], settings(gpu_memory_utilization=0.9))
    assert not fit.ok and "JUNE_LLM_GPU_MEMORY_UTILIZATION=0.50" in fit.message
    assert check_fit(get_preset(GPU_PRESET), [busy], settings(gpu_memory_utilization=0.5)).ok


def test_awq_preset_fits_a_24gb_gpu() -> None:
    fit = check_fit(get_preset(GPU_PRESET), [RTX_4090], settings())
    assert fit == Fit(True, fit.message, fit.need_gib, fit.usable_gib) and fit.ok
    assert fit.need_gib <= fit.usable_gib


def test_wrong_vllm_build_is_refused() -> None:
    assert not check_fit(get_preset(GPU_PRESET), [H100], settings(), vllm_flavour="cpu").ok
    assert "llm-cpu" in check_fit(get_preset(CPU_PRESET), [], settings(), vllm_flavour="cuda").message
    assert check_fit(get_preset(CPU_PRESET), [], settings(), vllm_flavour="cpu").ok


def test_cpu_context_beyond_the_kv_cache_is_refused() -> None:
    assert check_fit(get_preset(CPU_PRESET), [], settings()).ok
    fit = check_fit(get_preset(CPU_PRESET), [], settings(max_model_len=200_000, cpu_kv_cache_gib=1))
    assert not fit.ok and "JUNE_LLM_CPU_KV_CACHE_GIB" in fit.message


def test_auto_picks_gpu_preset_only_when_it_fits() -> None:
    auto = settings(model="auto")
    assert resolve_preset(auto, []).name == CPU_PRESET
    assert resolve_preset(auto, [T4]).name == CPU_PRESET
    assert resolve_preset(auto, [RTX_4090]).name == GPU_PRESET
    assert resolve_preset(auto, [RTX_4090], vllm_flavour="cpu").name == CPU_PRESET
    assert resolve_preset(settings(model="qwen3-coder-30b-a3b"), []).name == "qwen3-coder-30b-a3b"


def test_parse_nvidia_smi_csv() -> None:
    out = "0, NVIDIA GeForce RTX 4090, 24564, 24080, 8.9\n1, Tesla P100-PCIE-16GB, 16384, 16000, [N/A]\n"
    gpus = parse_nvidia_smi(out)
    assert gpus[0] == GpuInfo(0, "NVIDIA GeForce RTX 4090", 24564 / 1024, 24080 / 1024, (8, 9))
    assert gpus[1].compute_capability is None and gpus[1].index == 1
    assert parse_nvidia_smi("") == []


@pytest.mark.parametrize(
    ("capability", "archs", "ok"),
    [
        ((8, 9), ["sm_80", "sm_90"], True),  # sm_80 machine code runs on later 8.x
        ((9, 0), ["sm_90a"], True),
        ((12, 0), ["sm_80", "sm_90", "compute_90"], True),  # PTX is compiled by the driver for newer GPUs
        ((12, 0), ["sm_80", "sm_90"], False),  # a Blackwell card with a PyTorch built before it
        ((7, 5), ["sm_80", "sm_90"], False),
        ((8, 6), [], False),
    ],
)
def test_arch_supported(capability: tuple[int, int], archs: list[str], ok: bool) -> None:
    assert arch_supported(capability, archs) is ok


def test_gpu_the_installed_torch_cannot_drive_is_refused() -> None:
    blackwell = GpuInfo(0, "NVIDIA RTX PRO 6000", total_gib=95.0, free_gib=94.0, compute_capability=(12, 0))
    fit = check_fit(get_preset(GPU_PRESET), [blackwell], settings(), torch_archs=["sm_80", "sm_86", "sm_90"])
    assert not fit.ok and "12.0" in fit.message and "sm_90" in fit.message
    assert check_fit(get_preset(GPU_PRESET), [blackwell], settings(), torch_archs=["sm_90", "sm_120"]).ok


def test_official_gptq_preset_fits_a_24gb_gpu_and_needs_ampere() -> None:
    preset = get_preset("qwen3-30b-a3b-gptq-int4")
    assert preset.model == "Qwen/Qwen3-30B-A3B-GPTQ-Int4" and preset.reasoning_parser == "qwen3"
    assert check_fit(preset, [RTX_4090], settings()).ok
    assert not check_fit(preset, [T4], settings()).ok


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [
        ("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n", True),  # Sapphire Rapids, Zen 4
        ("flags\t\t: fpu avx2 avx512f amx_bf16 amx_tile\n", True),
        ("flags\t\t: fpu sse4_2 avx2 fma avx512f avx512_vnni\n", False),  # Cascade Lake: no bf16
        ("flags\t\t: fpu avx2 avx512_fp16\n", False),  # another 16-bit format is not bf16
        ("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm sve\n", True),  # Neoverse V1 (aarch64)
        ("processor\t: 0\nFeatures\t: fp asimd evtstrm crc32\n", False),
        ("model name\t: avx512_bf16 in a name is no flag\n", False),
        ("", False),
    ],
)
def test_cpu_bf16_is_read_from_the_flags_line(cpuinfo: str, expected: bool) -> None:
    assert cpu_has_bf16(cpuinfo) is expected
