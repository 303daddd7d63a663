"""`june bench …`: the coding-agent harness and the stack's performance benchmarks.

Each command lives in its own module; this file only registers them.
"""

from __future__ import annotations

import typer

bench = typer.Typer(help="Benchmarks: the coding agent on public datasets, and the stack's speed.", no_args_is_help=True)

# Registered commands (one line each): bench.command("NAME")(function)
