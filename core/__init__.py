"""june's shared core: what every service imports, and nothing above it.

Layers, one way only (tests/test_layers.py): `core` imports no other june package; the services
(`speech`, `gateway`, `bots`, `june.llm`) and `benchmarks` import `core` and never each other; the
CLI (`june`) sits on top and loads a service or the benchmarks only when its command runs.
"""
