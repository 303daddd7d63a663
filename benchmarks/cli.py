"""`june bench …`: the coding-agent harness and the stack's performance benchmarks.

Each command lives in its own module; this file only registers them.
"""

from __future__ import annotations

import typer

bench = typer.Typer(help="Benchmarks: the coding agent on public datasets, and the stack's speed.", no_args_is_help=True)

# Registered commands (one line each): bench.command("NAME")(function)
from benchmarks import harness, report  # noqa: E402  (the coding-agent harness, issue 6)
bench.command("run")(harness.run)
bench.command("report")(report.report)
bench.command("selfcheck")(harness.selfcheck)
from benchmarks.perf import pipeline as perf_pipeline  # noqa: E402  (the bots' voice pipeline, issue 5)
bench.command("pipeline")(perf_pipeline.pipeline)
from benchmarks.perf import speech as perf_speech; bench.command("speech")(perf_speech.speech)  # noqa: E402, E702  (speech service, issue 3)
from benchmarks.perf import gateway as perf_gateway, vllm_serve as perf_serve; bench.command("gateway")(perf_gateway.gateway); bench.command("serve")(perf_serve.serve)  # noqa: E402, E702  (gateway overhead, vLLM serving; issue 4)
