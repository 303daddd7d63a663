"""Performance benchmarks of the stack: speech, gateway, pipeline. They print tables; none is a test."""
