"""Async tests of core run on asyncio, the loop june's services run on."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
