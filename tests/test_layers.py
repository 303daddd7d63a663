"""Import direction: the CLI sits on top and loads a service only when its command runs."""

from __future__ import annotations

import subprocess
import sys


def _top_level_modules_after(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return set(done.stdout.split())


def test_june_up_does_not_import_the_services_or_the_benchmarks() -> None:
    loaded = _top_level_modules_after("import june.cli, june.stack")
    assert not loaded & {"benchmarks", "bots", "speech", "gateway"}, loaded


def test_june_bench_is_still_a_command() -> None:
    done = subprocess.run([sys.executable, "-m", "june", "bench", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "selfcheck" in done.stdout
