"""Settings from the environment, and `python -m gateway` as the conftest fixture starts it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gateway.settings import GatewaySettings
from tests.conftest import free_port, run_service
from tests.gateway.stub_upstream import MODELS


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOST", "PORT", "LLM_URL", "SPEECH_URL", "API_KEYS"):
        monkeypatch.delenv(f"JUNE_GATEWAY_{name}", raising=False)
    s = GatewaySettings()
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert (s.llm_url, s.speech_url) == ("http://127.0.0.1:8002", "http://127.0.0.1:8001")
    assert s.api_keys == []


@pytest.mark.parametrize(
    ("raw", "keys"),
    [("", []), ("sk-a", ["sk-a"]), (" sk-a , sk-b,", ["sk-a", "sk-b"]), ('["sk-a", "sk-b"]', ["sk-a", "sk-b"])],
)
def test_api_keys_from_env(monkeypatch: pytest.MonkeyPatch, raw: str, keys: list[str]) -> None:
    monkeypatch.setenv("JUNE_GATEWAY_API_KEYS", raw)
    settings = GatewaySettings()
    assert [k.get_secret_value() for k in settings.api_keys] == keys
    assert "sk-a" not in repr(settings)


def test_python_m_gateway(stub_url: str, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "JUNE_GATEWAY_HOST": "127.0.0.1",
        "JUNE_GATEWAY_PORT": str(port),
        "JUNE_GATEWAY_LLM_URL": stub_url,
        "JUNE_GATEWAY_SPEECH_URL": stub_url,
        "JUNE_GATEWAY_API_KEYS": "sk-a,sk-b",
    }
    with run_service("gateway", ["-m", "gateway"], env, f"{url}/health", tmp_path, timeout=30):
        assert httpx.get(f"{url}/v1/models").status_code == 401
        r = httpx.get(f"{url}/v1/models", headers={"authorization": "Bearer sk-b"})
        assert r.status_code == 200
        assert r.json() == MODELS


def test_limits_and_upstreams_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUNE_GATEWAY_LLM_URLS", "http://a:8000, http://b:8000")
    monkeypatch.setenv("JUNE_GATEWAY_REQUESTS_PER_MINUTE", "60")
    monkeypatch.setenv("JUNE_GATEWAY_LIMITS_BACKEND", "redis")
    monkeypatch.setenv("JUNE_GATEWAY_REDIS_URL", "redis://127.0.0.1:6379/0")
    s = GatewaySettings()
    assert s.llm_upstreams() == ["http://a:8000", "http://b:8000"]
    assert (s.requests_per_minute, s.completion_tokens_per_minute, s.limits_backend) == (60, None, "redis")
    monkeypatch.delenv("JUNE_GATEWAY_REDIS_URL")
    with pytest.raises(ValueError, match="redis_url"):
        GatewaySettings()
