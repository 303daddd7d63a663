"""deploy/june.Dockerfile against june's code: each target installs the extra its service needs and
copies only the packages it imports (no Docker engine needed: the Dockerfile, the code's imports
and uv.lock are read as text).

What a service imports is found statically, from its entry modules through every june module they
import (function-level imports included, `if TYPE_CHECKING:` blocks not). Third-party imports count
everywhere in the service's own package and entry modules, and at module level elsewhere: a shared
core module's lazy import (core.observability's Litestar hook) belongs to the services that call
it. What an extra installs comes from uv.lock's dependency graph; which import names a distribution
provides, from the installed distributions' metadata (else the name itself).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest

from tests.deploy import dockerfile
from tests.deploy.conftest import DEPLOY, ROOT
from tests.deploy.dockerfile import Stage

DOCKERFILE = DEPLOY / "june.Dockerfile"
FIRST_PARTY = ("core", "june", "speech", "gateway", "bots", "benchmarks")
TARGETS = {
    # target: (its extra, entry modules: what its CMD runs, and june.smoke for the gateway image,
    # which compose's and k8s' smoke checks run in)
    "speech": ("speech", ["speech.__main__"]),
    # The gateway image serves /v1/realtime too, so it installs the realtime extra (gateway + VAD + audio).
    "gateway": ("realtime", ["gateway.__main__", "june.smoke"]),
    "telegram-bot": ("bots", ["bots.telegram.__main__"]),
    "discord-bot": ("bots", ["bots.discord.__main__"]),
}
OPTIONAL_EXTRAS = {"speech": ["speech-torch"]}
"""Extras a target may add with EXTRAS (their imports are lazy, for the GPU backend)."""


@cache
def stages() -> dict[str, Stage]:
    return dockerfile.stages(DOCKERFILE)


def build_stage(target: str) -> Stage:
    """The stage whose /app/.venv the target copies."""
    (line,) = [line for line in stages()[target].lines if line.startswith("COPY --from=") and "/app/.venv" in line]
    return stages()[re.search(r"--from=(\S+)", line).group(1)]


def _module_file(name: str) -> Path | None:
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(module: str, *, lazy: bool = True) -> set[str]:
    """Absolute names imported in `module` (outside TYPE_CHECKING; inside functions too when `lazy`),
    `from a import b` as a and a.b."""
    path = _module_file(module)
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    skipped = [
        n
        for n in ast.walk(tree)
        if _type_checking(n) or (not lazy and isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    ]
    skip = {id(n) for node in skipped for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


@cache
def closure(entries: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
    """(june modules, third-party top-level import names) reachable from `entries`."""
    seen: set[str] = set()
    third: set[str] = set()
    own = {e.split(".")[0] for e in entries if e.split(".")[0] != "june"}
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts)) if _module_file(".".join(parts[:i]))]
        eager = _imports(module, lazy=False)
        for name in _imports(module):
            top = name.split(".")[0]
            if top in FIRST_PARTY:
                if _module_file(name):
                    todo.append(name)
            elif top != "__future__" and top not in sys.stdlib_module_names:
                if name in eager or module.split(".")[0] in own or module in entries:
                    third.add(top)
    return frozenset(seen), frozenset(third)


@cache
def _lock() -> dict[str, dict]:
    return {p["name"]: p for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}


def installed_by(extras: list[str]) -> set[str]:
    """Distribution names `uv sync --no-default-groups --extra ...` installs, from uv.lock."""
    lock = _lock()
    june = lock["june"]
    todo = [*june["dependencies"], *(d for e in extras for d in june["optional-dependencies"][e])]
    names: set[str] = set()
    while todo:
        dep = todo.pop()
        package = lock[dep["name"]]
        for extra in dep.get("extra", []):
            todo += package.get("optional-dependencies", {}).get(extra, [])
        if dep["name"] not in names:
            names.add(dep["name"])
            todo += package.get("dependencies", [])
    return names


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def _providers() -> dict[str, set[str]]:
    return {top: {_normal(d) for d in dists} for top, dists in importlib.metadata.packages_distributions().items()}


def _synced_extras(stage: Stage) -> list[list[str]]:
    return [re.findall(r"--extra (\S+)", line) for line in stage.lines if "uv sync" in line]


@pytest.mark.parametrize("target", TARGETS)
def test_each_target_installs_its_own_extra(target: str) -> None:
    extra, _ = TARGETS[target]
    stage = build_stage(target)
    syncs = _synced_extras(stage)
    assert len(syncs) == 2 and all(s == [extra] for s in syncs), (stage.name, syncs)
    assert 'ARG EXTRAS=""' in stage.lines  # EXTRAS only ever adds to the target's own extra
    assert all("${EXTRAS}" in line for line in stage.lines if "uv sync" in line)


@pytest.mark.parametrize("target", TARGETS)
def test_each_target_copies_only_the_packages_it_imports(target: str) -> None:
    needed = {
        m.split(".")[0]
        for t, (_, entries) in TARGETS.items()
        if build_stage(t) is build_stage(target)
        for m in closure(tuple(entries))[0]
    }
    stage = build_stage(target)
    copied = {m.group(1) for line in stage.lines if (m := re.fullmatch(r"COPY (\w+) \./\1", line))}
    assert copied == needed, f"{stage.name} should COPY exactly {sorted(needed)} (imported), copies {sorted(copied)}"


@pytest.mark.parametrize("target", TARGETS)
def test_each_target_installs_what_its_code_imports(target: str) -> None:
    extra, entries = TARGETS[target]
    installed = installed_by([extra, *OPTIONAL_EXTRAS.get(target, [])])
    _, third = closure(tuple(entries))
    missing = {
        name for name in third if not (_providers().get(name, {_normal(name)}) & {_normal(d) for d in installed})
    }
    assert not missing, f"target {target} (extra {extra}) imports {sorted(missing)}, which its extra does not install"


def test_the_bench_extra_installs_what_bench_run_report_and_selfcheck_import() -> None:
    """`uv sync --no-default-groups --extra bench` is enough for the harness (it lacked openai)."""
    installed = {_normal(d) for d in installed_by(["bench"])}
    _, third = closure(("benchmarks.run", "benchmarks.selfcheck", "benchmarks.report", "benchmarks.direct"))
    optional = {"datasets"}  # SWE-bench from the hub, only where it is installed (benchmarks/datasets.py)
    missing = {name for name in third - optional if not (_providers().get(name, {_normal(name)}) & installed)}
    assert not missing, f"the bench extra does not install {sorted(missing)}"


def test_a_target_without_its_extra_would_lack_imports() -> None:
    # The bug this guards against: `--target speech` built with the gateway's extra had no faster-whisper.
    _, third = closure(("speech.__main__",))
    installed = {_normal(d) for d in installed_by(["gateway"])}
    assert "faster_whisper" in {name for name in third if not (_providers().get(name, set()) & installed)}


def test_service_targets_run_from_the_shared_runtime() -> None:
    for target in TARGETS:
        assert stages()[target].base == "runtime", target
        assert build_stage(target).base == "build", target
