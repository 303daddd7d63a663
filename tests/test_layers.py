"""Import direction: the CLI sits on top and loads a service only when its command runs."""

from __future__ import annotations

import subprocess
import sys


def _top_level_modules_after(code: str) -> set[str]:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(done.stdout.split())


def test_june_up_does_not_import_the_services_or_the_benchmarks() -> None:
    loaded = _top_level_modules_after("import june.cli, june.stack")
    assert not loaded & {"benchmarks", "bots", "speech", "gateway"}, loaded


def test_june_bench_is_still_a_command() -> None:
    done = subprocess.run([sys.executable, "-m", "june", "bench", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "selfcheck" in done.stdout


# Which top-level june packages each one may import (lazy imports included): `core` at the bottom,
# the services and the benchmarks beside each other on it, the CLI (`june`) on top.
ALLOWED = {
    "core": set(),
    "speech": {"core"},
    "bots": {"core"},
    "gateway": {"core"},
    # The coding harness needs core only; the stack's performance benchmarks drive the services.
    "benchmarks": {"core", "speech", "gateway", "bots"},
    "june": {"core", "speech", "gateway", "bots", "benchmarks"},
}


def _imported_packages(package: str) -> dict[str, set[str]]:
    """{first-party top-level package: modules of `package` importing it}, found with ast."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    found: dict[str, set[str]] = {}
    for path in (root / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in ALLOWED and top != package:
                    found.setdefault(top, set()).add(str(path.relative_to(root)))
    return found


def test_packages_import_one_way_only() -> None:
    wrong = {
        (package, imported): sorted(modules)
        for package, allowed in ALLOWED.items()
        for imported, modules in _imported_packages(package).items()
        if imported not in allowed
    }
    assert not wrong, wrong
