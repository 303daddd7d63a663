"""Settings of june's LLM server (vLLM's OpenAI API), read from `JUNE_LLM_*` environment variables."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.cache import default_cache_dir
from core.live_signal import LiveSignalPath

LIVE_SIGNAL_ENV = "JUNE_LLM_LIVE_SIGNAL"
"""`LLMSettings.live_signal`'s variable, which june.llm.server also sets in vLLM's environment for the
scheduler and plugin that read it there (june.llm.live_scheduler, june.llm.vllm_plugin)."""


class LLMSettings(BaseSettings):
    """Where and what vLLM serves; every field is `JUNE_LLM_<FIELD>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="JUNE_LLM_", extra="ignore")

    host: str = "127.0.0.1"
    """Interface vLLM listens on."""
    port: int = Field(8002, ge=1, le=65535)
    """TCP port vLLM listens on."""
    model: str = "auto"
    """Preset name (june.llm.presets.PRESETS) or "auto": the GPU preset if it fits the GPU, else the CPU preset."""
    max_model_len: int | None = Field(None, ge=256)
    """Context length in tokens (prompt + output); None takes the preset's default."""
    gpu_memory_utilization: float = Field(0.90, gt=0.0, le=1.0)
    """Fraction of the GPU's total memory vLLM may use for weights, activations and KV cache."""
    cpu_kv_cache_gib: int = Field(2, ge=1)
    """KV cache size in GiB on CPU (VLLM_CPU_KVCACHE_SPACE)."""
    cpu_dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    """Weights and activations of a CPU preset: "auto" is bfloat16 where the CPU computes it in hardware
    (x86 AVX512-BF16 or AMX, Arm BF16), float32 elsewhere. On the 2-core dev box (AVX512-BF16) bfloat16
    decodes the 0.5B at 31 tokens/s against 14 in float32, with the same greedy text on a spot check."""
    cpu_idle_spin_ms: int = Field(20, ge=0, le=1000)
    """How long vLLM's worker busy-waits for its next step once idle, on CPU (vLLM's own: 1000 ms, a
    whole core for a second after every request, taken from TTS and STT). Applied by june's vLLM
    plugin (june.llm.vllm_plugin)."""
    cpu_reserved_cores: int = Field(0, ge=0)
    """CPU cores vLLM keeps free of inference threads on CPU (VLLM_CPU_NUM_OF_RESERVED_CPU); vLLM's own default is 1."""
    live_signal: LiveSignalPath = None
    """The live window file (core.live_signal) the gateway on this host writes while a live turn waits for
    its answer (its transcription, then its response until the first audio), and at a second level
    while interactive work is in flight; on CPU, june's vLLM scheduler (june.llm.live_scheduler) then
    pauses lower-class generations, or gives batch ones only a small share of its steps. `june up` sets
    it, with the gateway's and the speech service's, to one file; None or "": off."""
    served_model_name: str | None = None
    """Model name clients send and /v1/models lists; None takes the preset's name."""
    extra_args: str = ""
    """More vLLM arguments, split like a shell line, appended last (e.g. "--max-num-seqs 8")."""
    cache_dir: Path = Field(default_factory=default_cache_dir)
    """Folder for converted offline models (~2 GB for the CPU preset)."""

    def extra_argv(self) -> list[str]:
        """`extra_args` split into argv words (shlex rules); raises ValueError on unbalanced quotes."""
        return shlex.split(self.extra_args)
