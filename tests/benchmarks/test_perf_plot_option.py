"""The benchmarks' `--out` plot option (benchmarks/perf/plot_option.py): a suffix matplotlib cannot
write is refused when the command line is read, before any measuring."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.perf.plot_option import plot_path
from core.procs import free_port
from june.cli import app


@pytest.mark.parametrize("command", [["bench", "realtime"], ["bench", "speech"]])
def test_an_out_path_matplotlib_cannot_write_is_refused_at_once(command: list[str]) -> None:
    gateway = ["--gateway", f"http://127.0.0.1:{free_port()}"] if command[-1] == "realtime" else []
    result = CliRunner().invoke(app, [*command, *gateway, "--out", "report.json"])
    assert result.exit_code == 2, result.output  # a usage error, not a failed run
    assert "report.json" in result.output and "png" in result.output


def test_an_out_path_with_a_plot_suffix_is_taken() -> None:
    for name in ("a.png", "b.SVG", "c.pdf"):
        assert plot_path(Path(name)) == Path(name)
