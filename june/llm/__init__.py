"""june's LLM server: vLLM's OpenAI-compatible API for a named preset.

- settings.py: LLMSettings (JUNE_LLM_*)
- presets.py: PRESETS, the models and their vLLM flags as data
- models.py: the offline CPU model (GGUF from PyPI packages → HF safetensors, once)
- preflight.py: detect_gpus, check_fit (pure), PreflightError
- server.py: vllm_command (argv + env), serve (preflight → prepare → exec vLLM)

`python -m june.llm` serves with settings from the environment.
"""

from june.llm.preflight import PreflightError
from june.llm.server import serve, vllm_command
from june.llm.settings import LLMSettings

__all__ = ["LLMSettings", "PreflightError", "serve", "vllm_command"]
