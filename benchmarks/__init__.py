"""june: benchmarks."""
