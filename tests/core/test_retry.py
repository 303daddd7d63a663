"""core.retry: one stamina loop, the caller's classification decides."""

from __future__ import annotations

import time

import pytest

from core.retry import retry

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_the_classification_sees_every_failure_and_decides() -> None:
    calls: list[int] = []
    seen: list[tuple[str, int]] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError(f"try {len(calls)}")
        return "ok"

    def classify(e: Exception, failures: int) -> bool | float:
        seen.append((str(e), failures))
        return True

    assert await retry(flaky, classify, wait_initial=0.0, wait_max=0.0, wait_jitter=0.0) == "ok"
    assert seen == [("try 1", 1), ("try 2", 2)]


async def test_giving_up_raises_the_last_error_and_a_wait_is_honoured() -> None:
    calls = 0

    async def busy() -> None:
        nonlocal calls
        calls += 1
        raise TimeoutError(f"busy {calls}")

    start = time.monotonic()
    with pytest.raises(TimeoutError, match="busy 2"):
        await retry(busy, lambda e, failures: 0.2 if failures < 2 else False)
    assert calls == 2 and time.monotonic() - start >= 0.2
