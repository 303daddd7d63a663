"""`june bench run`: the agent (benchmarks/agent_mode.py) or one plain completion per task (`--mode
direct`, benchmarks/direct.py) on a dataset, graded in the sandbox (benchmarks/grading.py); results
in OUT (benchmarks/results.py). Also the model spec (`parse_model`) and sampling fields it sends.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer

from benchmarks import agent_mode, datasets, direct
from benchmarks.agent import AgentConfig
from benchmarks.batch import console, load_tasks, run_batch
from benchmarks.models import Model, OpenAIModel, ScriptedModel
from benchmarks.sandbox import Limits, conceal

MODES = ("agent", "direct")
DIRECT_REPLY_TOKENS = 768
"""Direct mode's default max_tokens: EvalPlus's `max_new_tokens`."""


def sampling(temperature: float, repetition_penalty: float | None) -> dict[str, Any]:
    """vLLM sampling fields sent besides `temperature`, so a run decodes as published evaluations do
    rather than with the server's generation-config defaults (june's Qwen2.5-Coder presets set the
    model card's top_k 20 and repetition_penalty 1.1, and a penalty on every token already seen, the
    prompt's included, keeps a small model from repeating the signature it was given): EvalPlus's
    top_p 0.95 and no top_k when sampling, `repetition_penalty` unless None (leave the server's)."""
    fields: dict[str, Any] = {"top_p": 0.95, "top_k": -1} if temperature > 0 else {}
    if repetition_penalty is not None:
        fields["repetition_penalty"] = repetition_penalty
    return fields


def parse_model(
    spec: str,
    api_key: str,
    tool_choice: str,
    max_tokens: int,
    temperature: float = 0.0,
    extra_body: dict[str, Any] | None = None,
) -> Callable[[], Model]:
    """A model factory from `scripted:FILE.json` (a fresh replay per task) or `BASE_URL/MODEL_NAME`
    (e.g. http://127.0.0.1:8000/v1/Qwen/Qwen3-30B-A3B; one shared client); `extra_body` goes into
    every request (e.g. `sampling(...)`)."""
    if spec.startswith("scripted:"):
        path = Path(spec.removeprefix("scripted:"))
        return lambda: ScriptedModel.from_file(path)
    if "/v1/" in spec:
        base, name = spec.split("/v1/", 1)
    else:
        parts = urlsplit(spec)
        base, name = f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")
    if not name or not base.startswith("http"):
        raise typer.BadParameter(f"--model wants BASE_URL/MODEL_NAME or scripted:FILE, got {spec!r}")
    shared = OpenAIModel(
        base_url=f"{base.rstrip('/')}/v1",
        model=name,
        api_key=api_key,
        tool_choice=tool_choice,  # type: ignore[arg-type]
        max_tokens=max_tokens,
        temperature=temperature,
        extra_body=extra_body or {},
    )
    return lambda: shared


def run(
    model: str = typer.Option(..., help="BASE_URL/MODEL_NAME of an OpenAI-compatible endpoint, or scripted:FILE.json"),
    out: Path = typer.Option(..., help="Output folder (results.jsonl, trajectories/); reruns resume"),
    mode: str = typer.Option(
        "agent", help="agent: the tool-calling agent; direct: one chat completion per task, code extracted"
    ),
    dataset: str = typer.Option("humaneval", help=f"One of: {', '.join(datasets.DATASETS)}"),
    split: str | None = typer.Option(None, help="DataFrameBench split: test (default) or val"),
    data: Path | None = typer.Option(None, help="Local dataset file (EvalPlus, SWE-bench)"),
    workers: int = typer.Option(4, help="Tasks in parallel"),
    limit: int | None = typer.Option(None, help="Only the first K tasks"),
    task: list[str] | None = typer.Option(None, help="Only these task ids (repeatable)"),
    shuffle: int | None = typer.Option(
        None,
        help="Run the tasks in a random order from this seed, so that a run stopped early (or --limit) "
        "is a random sample",
    ),
    api_key: str = typer.Option(
        "EMPTY", envvar=["JUNE_BENCH_API_KEY", "OPENAI_API_KEY"], help="Bearer key for the endpoint"
    ),
    tool_choice: str = typer.Option("required", help="auto | required | none (small models may need required)"),
    native_tools: bool = typer.Option(True, help="Send tool schemas; --no-native-tools parses ```bash blocks"),
    draft: bool = typer.Option(
        True,
        help="Agent mode: the first step is direct mode's answer, saved as solution.py; "
        "the agent then tests, fixes and submits it",
    ),
    draft_from: Path | None = typer.Option(
        None,
        help="Agent mode, greedy: take the draft from this direct run's recorded answers (same model and prompt) "
        "instead of asking again",
    ),
    max_steps: int = typer.Option(30, help="Model turns per task"),
    max_tokens: int = typer.Option(200_000, help="Prompt+completion tokens per task"),
    max_wall: float = typer.Option(600.0, help="Seconds per task"),
    max_reply_tokens: int | None = typer.Option(
        None, help="max_tokens of each completion [default: agent 2048, direct 768 (EvalPlus)]"
    ),
    temperature: float = typer.Option(0.0, help="Sampling temperature (0: greedy, as published pass@1 figures)"),
    samples: int = typer.Option(1, help="Direct mode: completions per task, for pass@k (needs --temperature > 0)"),
    repetition_penalty: float | None = typer.Option(
        1.0,
        help="vLLM repetition_penalty sent with every request (1.0: none, as published evaluations decode); "
        "--repetition-penalty 0 leaves the server's default",
    ),
    command_timeout: float = typer.Option(60.0, help="Seconds per bash command"),
) -> None:
    """Run the coding agent (or plain completions, --mode direct) on a dataset and grade each task in the sandbox."""
    if mode not in MODES:
        raise typer.BadParameter(f"--mode is one of {', '.join(MODES)}, not {mode!r}")
    if samples < 1 or (samples > 1 and temperature <= 0):
        raise typer.BadParameter("--samples N > 1 needs --temperature > 0 (greedy samples are all the same)")
    if samples > 1 and mode != "direct":
        raise typer.BadParameter("--samples is for --mode direct")
    if draft_from is not None and (mode != "agent" or not draft or temperature > 0):
        raise typer.BadParameter("--draft-from is for greedy agent runs with a draft (--mode agent, --temperature 0)")
    if draft_from is not None and not (draft_from / "trajectories").is_dir():
        raise typer.BadParameter(f"{draft_from} holds no trajectories/ of a direct run", param_hint="--draft-from")
    tasks = load_tasks(dataset, split, data, limit, task, shuffle)
    conceal(out, data, draft_from)  # inside a bound folder (the venv, say) they would otherwise be readable
    reply_tokens = max_reply_tokens or (DIRECT_REPLY_TOKENS if mode == "direct" else 2048)
    make_model = parse_model(
        model, api_key, tool_choice, reply_tokens, temperature, sampling(temperature, repetition_penalty or None)
    )
    if mode == "direct":
        direct_config = direct.DirectConfig(samples=samples, max_wall_s=max_wall)
        records = run_batch(tasks, lambda t: direct.solve(t, make_model(), direct_config, out), out, workers)
    else:
        config = AgentConfig(max_steps=max_steps, max_tokens=max_tokens, max_wall_s=max_wall, native_tools=native_tools)
        limits = Limits(wall_s=command_timeout, cpu_s=int(command_timeout))
        records = run_batch(
            tasks, lambda t: agent_mode.solve(t, make_model(), config, out, limits, draft, draft_from), out, workers
        )
    passed = sum(r["passed"] for r in records)
    console.print(f"{dataset}: {passed}/{len(records)} passed this run; `june bench report {out}` for the summary")
