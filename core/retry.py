"""One retry loop over stamina for june's callers, each with its own classification of failures.

`retry(call, classify)` awaits `call()` until it succeeds or `classify` gives up. `classify(error,
failures)` sees each failure (`failures` counts them, this one included) and answers False (give
up: the error is raised), True (try again after stamina's exponential backoff with jitter) or a
number of seconds to wait first (what a busy upstream asked for in ``Retry-After`` / ``retry_after``).
The callers: the voice stages' client (`core.voice_client`), Telegram's request middleware
(`bots.telegram.delivery`), Discord's REST client (`bots.discord.rest`).

stamina (https://stamina.hynek.me) brings the backoff, its instrumentation (structlog / Prometheus /
OpenTelemetry hooks) and `stamina.set_testing` for tests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import stamina

__all__ = ["Classify", "retry"]

_T = TypeVar("_T")

Classify = Callable[[Exception, int], bool | float]
"""(the error, failures so far) → False (give up), True (back off, try again) or seconds to wait."""


async def retry(
    call: Callable[[], Awaitable[_T]],
    classify: Classify,
    *,
    wait_initial: float = 0.1,
    wait_max: float = 5.0,
    wait_jitter: float = 1.0,
) -> _T:
    """`await call()`, repeated while `classify` says so (module docstring). The backoff of a True
    answer starts at `wait_initial` seconds, doubles up to `wait_max`, plus up to `wait_jitter`.
    Raises the last error `call` raised once `classify` gives up (exceptions that are not
    `Exception`, such as cancellation, are never retried)."""
    failures = 0

    def on(error: Exception) -> bool | float:
        nonlocal failures
        failures += 1
        return classify(error, failures)

    retrying: Any = stamina.retry_context(
        on=on, attempts=None, timeout=None, wait_initial=wait_initial, wait_max=wait_max, wait_jitter=wait_jitter
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable: stamina returns or re-raises the last error")  # pragma: no cover
