"""Shared fixtures: `bwrap` skips a test (with the Debian packages to install) where the sandbox's
programs are missing, and fails it under CI."""

from __future__ import annotations

import os

import pytest

from tests.conftest import require_program


@pytest.fixture
def bwrap() -> None:
    """bubblewrap and util-linux's prlimit (and setpriv as root), which every sandboxed run needs."""
    require_program("bwrap", "bubblewrap")
    require_program("prlimit", "util-linux")
    if os.geteuid() == 0:
        require_program("setpriv", "util-linux")
