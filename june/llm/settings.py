"""Settings of june's LLM server (vLLM's OpenAI API), read from `JUNE_LLM_*` environment variables."""

from __future__ import annotations

import shlex
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.cache import default_cache_dir


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
    cpu_reserved_cores: int = Field(0, ge=0)
    """CPU cores vLLM keeps free of inference threads on CPU (VLLM_CPU_NUM_OF_RESERVED_CPU); vLLM's own default is 1."""
    served_model_name: str | None = None
    """Model name clients send and /v1/models lists; None takes the preset's name."""
    extra_args: str = ""
    """More vLLM arguments, split like a shell line, appended last (e.g. "--max-num-seqs 8")."""
    cache_dir: Path = Field(default_factory=default_cache_dir)
    """Folder for converted offline models (~2 GB for the CPU preset)."""

    def extra_argv(self) -> list[str]:
        """`extra_args` split into argv words (shlex rules); raises ValueError on unbalanced quotes."""
        return shlex.split(self.extra_args)
