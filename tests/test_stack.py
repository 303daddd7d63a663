"""`june up` as a user runs it: a child that cannot start is reported, and the stack stops."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import free_port


def test_up_reports_a_child_that_dies_and_stops_the_rest() -> None:
    # No GPU here: the 30B preset must refuse at preflight, and `june up` must say so and exit 1.
    env = {
        **os.environ,
        "JUNE_LLM_MODEL": "qwen3-30b-a3b-awq",
        "JUNE_LLM_PORT": str(free_port()),
        "JUNE_SPEECH_PORT": str(free_port()),
        "JUNE_GATEWAY_PORT": str(free_port()),
        "JUNE_TELEGRAM_TOKEN": "",
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [sys.executable, "-m", "june", "up"], env=env, capture_output=True, text=True, timeout=180
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "llm exited with code" in out, out
    assert "GPU" in out, out  # the preflight's reason reaches the user
    assert "stopped." in out
