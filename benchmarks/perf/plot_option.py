"""The benchmarks' `--out` plot option: a path whose suffix matplotlib can write, checked when the
command line is read, so a wrong suffix fails at once instead of after a run of several minutes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["PlotOut", "plot_path"]


def plot_path(path: Path) -> Path:
    """`path` when matplotlib writes its suffix (png, svg, pdf, …); raises typer.BadParameter naming them."""
    from matplotlib.figure import Figure  # matplotlib: the bench extra, loaded only for the benchmarks

    formats = Figure().canvas.get_supported_filetypes()
    if path.suffix.lstrip(".").lower() not in formats:
        raise typer.BadParameter(f"{path.name!r}: the plot is written as {', '.join(sorted(formats))} (by its suffix)")
    return path


PlotOut = Annotated[
    Path,
    typer.Option(dir_okay=False, callback=plot_path, help="Where to write the plot (PNG, SVG, PDF… by suffix)."),
]
"""A benchmark's `--out` option (see `plot_path`)."""
