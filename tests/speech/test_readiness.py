"""Readiness tells the truth: a model that fails to preload makes the speech service say which and
why on /ready, then exit with code 3; `june up` passes the reason on and stops, instead of waiting
for a "Loading models" that never ends."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import free_port


def test_june_up_says_which_model_failed_to_preload_and_stops() -> None:
    env = {
        **os.environ,
        # The speech engine refuses an unknown default voice when it loads: a preload failure in a second.
        "JUNE_SPEECH_DEFAULT_VOICE": "nobody",
        "JUNE_SPEECH_PRELOAD": "[]",  # no Whisper preload: keeps the test short
        "JUNE_SPEECH_PORT": str(free_port()),
        "COLUMNS": "300",
    }
    script = (
        "import sys\n"
        "from june.stack import Plan, Service, run\n"
        "url = f'http://127.0.0.1:{sys.argv[1]}/ready'\n"
        "sys.exit(run(Plan([Service('speech', 'speech', url, ready_timeout=150)], url, None), quiet=True))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, env["JUNE_SPEECH_PORT"]], env=env, capture_output=True, text=True, timeout=240
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "speech exited with code 3 before it was ready" in out, out
    assert "june up: speech cannot serve: preloading model 'piper' failed (ValueError: default voice 'nobody'" in out, (
        out
    )
    assert "stopped." in out
