"""deploy/env.example is exactly what june.envdoc renders from the settings classes."""

from __future__ import annotations

import difflib

import pytest
import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from june import envdoc
from tests.deploy.conftest import DEPLOY, K8S, ROOT
from tests.deploy.kustomize import build


def test_env_example_matches_settings():
    committed = (DEPLOY / "env.example").read_text()
    fresh = envdoc.render()
    diff = "".join(
        difflib.unified_diff(committed.splitlines(True), fresh.splitlines(True), "deploy/env.example", "rendered")
    )
    assert not diff, f"deploy/env.example is stale; run `python -m june.envdoc > deploy/env.example`:\n{diff}"


def test_every_field_of_every_settings_class_is_listed():
    text = envdoc.render()
    classes = envdoc.settings_classes()
    names = {c.__name__ for c in classes}
    assert {
        "SpeechSettings",
        "GatewaySettings",
        "RealtimeSettings",
        "LLMSettings",
        "BotSettings",
        "TelegramSettings",
    } <= names
    for cls in classes:
        for field, info in cls.model_fields.items():
            if envdoc.is_nested(info):
                assert info.annotation in classes, f"{cls.__name__}.{field}"
                continue
            assert f"# {envdoc.env_name(cls, field, info)}=" in text, f"{cls.__name__}.{field}"


class _Example(BaseSettings):
    """An example."""

    model_config = {"env_prefix": "EX_"}

    token: SecretStr = SecretStr("s3cret")
    """A secret with a default that must not leak."""
    prompt: str = 'Say "hi"\nthen stop'
    """Needs quoting."""
    names: list[str] = ["a", "b"]
    """A list."""
    maybe: int | None = None
    """Unset by default."""


def test_secrets_are_empty_and_values_read_back():
    text = envdoc.render([_Example])
    assert "s3cret" not in text
    assert "# EX_TOKEN=\n" in text
    assert '# EX_PROMPT="Say \\"hi\\"\\nthen stop"\n' in text
    assert '# EX_NAMES=["a","b"]\n' in text
    assert "# EX_MAYBE=\n" in text


def test_undocumented_field_is_an_error():
    class Bare(BaseSettings):
        x: int = 1

    with pytest.raises(ValueError, match=r"Bare\.x has no docstring"):
        envdoc.render([Bare])


def test_deploy_files_set_only_known_settings():
    """A JUNE_* name that no settings class reads is silently ignored (extra="ignore"): catch typos."""
    known = {envdoc.env_name(c, f, i) for c in envdoc.settings_classes() for f, i in c.model_fields.items()}
    known |= {"JUNE_SMOKE_KEY", "JUNE_SMOKE_BASE_URL"}  # june.smoke's options
    used: dict[str, str] = {}
    for name, service in yaml.safe_load((ROOT / "compose.yaml").read_text())["services"].items():
        used |= dict.fromkeys(service.get("environment", {}), f"compose {name}")
    for overlay in (K8S / "base", *(K8S / "overlays").iterdir()):
        for doc in build(overlay):
            used |= dict.fromkeys(
                {**doc.get("data", {}), **doc.get("stringData", {})}, f"k8s {doc['metadata']['name']}"
            )
            for c in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                used |= {e["name"]: f"k8s {doc['metadata']['name']}" for e in c.get("env", [])}
    for dockerfile in (ROOT / "deploy").glob("*.Dockerfile"):
        for word in dockerfile.read_text().split():
            if word.startswith("JUNE_") and "=" in word:
                used[word.split("=")[0]] = dockerfile.name
    unknown = {var: where for var, where in used.items() if var.startswith("JUNE_") and var not in known}
    assert not unknown, f"settings no class reads: {unknown}"
