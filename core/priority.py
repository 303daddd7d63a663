"""Request classes: whose work goes first when the box is busy.

Every request through june has a class, and every stage it passes (the gateway's admission, the
speech service's queue and threads, vLLM's scheduler) serves the higher class first:

- ``live``: a /v1/realtime turn (the voice page included): a person is listening *now*, and a
  second of delay is heard. Only the gateway's own realtime sessions, or a key the keys file
  grants it to, may send live work.
- ``interactive``: a person waits for the answer (the bots, an API call without a class).
- ``batch``: nobody is waiting on this one request (benchmarks, long transcriptions, bulk
  jobs); it slows down first, but it still finishes (no starvation).

A client picks its class with the ``X-June-Class`` header (or OpenAI's ``service_tier: "flex"``
for batch); the gateway resolves it against the key (`gateway.classes`) and passes the result on
to the upstreams in the same header (speech) or as vLLM's per-request ``priority`` (lower is
served earlier: https://docs.vllm.ai/en/latest/api/vllm/config/scheduler.html, policy "priority").
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["CLASSES", "DEFAULT_CLASS", "HEADER", "RANK", "VLLM_PRIORITY", "RequestClass", "parse_class"]

RequestClass = Literal["live", "interactive", "batch"]
CLASSES: tuple[RequestClass, ...] = get_args(RequestClass)
"""The classes, highest first."""
DEFAULT_CLASS: RequestClass = "interactive"
"""A request that names no class."""
HEADER = "X-June-Class"
"""The request header that carries a class, client → gateway and gateway → upstream."""
RANK: dict[RequestClass, int] = {c: i for i, c in enumerate(CLASSES)}
"""0 for live, 1 interactive, 2 batch: lower goes first."""
VLLM_PRIORITY: dict[RequestClass, int] = {"live": 0, "interactive": 10, "batch": 20}
"""vLLM's per-request `priority` for each class (lower is scheduled earlier; ties in arrival order)."""


def parse_class(value: str | None, default: RequestClass = DEFAULT_CLASS) -> RequestClass:
    """The class a header value names (case and surrounding spaces ignored); `default` for None or "".

    Raises ValueError naming the accepted values for anything else.
    """
    text = (value or "").strip().lower()
    if not text:
        return default
    for known in CLASSES:
        if text == known:
            return known
    raise ValueError(f"{HEADER} must be one of {', '.join(CLASSES)}; got {(value or '')[:40]!r}.")
