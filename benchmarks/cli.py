"""`june bench …`: the coding-agent harness and the stack's performance benchmarks.

Each command lives in its own module; this file only registers them.
"""

from __future__ import annotations

import typer

from benchmarks import report, run, selfcheck
from benchmarks.perf import classes, gateway, load, pipeline, realtime, speech, telegram, vllm_serve

bench = typer.Typer(
    help="Benchmarks: the coding agent on public datasets, and the stack's speed.", no_args_is_help=True
)

# The coding agent on public datasets (run.py, selfcheck.py, report.py).
bench.command("run")(run.run)
bench.command("report")(report.report)
bench.command("selfcheck")(selfcheck.selfcheck)
# Performance of the stack (perf/).
bench.command("speech")(speech.speech)
bench.command("classes")(classes.classes)
bench.command("gateway")(gateway.gateway)
bench.command("serve")(vllm_serve.serve)
bench.command("pipeline")(pipeline.pipeline)
bench.command("load")(load.load)
bench.command("realtime")(realtime.realtime)
bench.command("telegram")(telegram.telegram)
