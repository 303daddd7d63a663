"""The Grafana dashboard queries metrics that exist: june's own (defined in the source) and vLLM's."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY, ROOT

DASHBOARD = DEPLOY / "observability" / "grafana" / "dashboards" / "june.json"
SUFFIXES = ("_bucket", "_total", "_count", "_sum")
# june_http_* come from Telemetry.litestar_metrics (core.observability.HttpMetrics, prefix june_http).
LITESTAR = {
    "june_http_requests",
    "june_http_request_duration_seconds",
    "june_http_requests_in_progress",
    "june_http_requests_error",
}


def queried_metrics() -> set[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    return set(re.findall(r"\b(?:june_[a-z0-9_]+|vllm:[a-z0-9_]+)", " ".join(exprs)))


def base_name(metric: str) -> str:
    for suffix in SUFFIXES:
        if metric.endswith(suffix):
            return metric[: -len(suffix)]
    return metric


def june_source() -> str:
    files = [p for d in ("core", "speech", "gateway", "bots", "june") for p in (ROOT / d).rglob("*.py")]
    return "\n".join(p.read_text() for p in files)


def test_dashboard_covers_the_brief():
    names = {base_name(m) for m in queried_metrics()}
    for wanted in (
        "june_gateway_requests", "june_gateway_time_to_first_token_seconds", "vllm:generation_tokens",
        "june_speech_real_time_factor", "june_speech_queue_depth", "vllm:num_requests_waiting", "june_bot_messages",
    ):  # fmt: skip
        assert wanted in names, wanted


def test_june_metrics_are_defined_in_the_code():
    source = june_source()
    missing = [
        m
        for m in queried_metrics()
        if m.startswith("june_") and base_name(m) not in LITESTAR and f'"{base_name(m)}"' not in source
    ]
    assert not missing, f"the dashboard queries metrics no service defines: {missing}"
    assert 'prefix="june_http"' in (ROOT / "core" / "observability.py").read_text()


def test_vllm_metrics_exist_in_the_installed_vllm():
    spec = importlib.util.find_spec("vllm")  # finds the package without importing it (30 s)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("vLLM is not installed")
    metrics = Path(next(iter(spec.submodule_search_locations))) / "v1" / "metrics"
    source = "\n".join(p.read_text(errors="replace") for p in metrics.rglob("*.py"))
    assert source, f"no vLLM metrics code under {metrics}"
    missing = [m for m in queried_metrics() if m.startswith("vllm:") and f'"{base_name(m)}"' not in source]
    assert not missing, f"vLLM does not export: {missing}"
