"""`june smoke` against a real gateway (all checks pass), a closed port and a gateway that says 401."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
import respx
from typer.testing import CliRunner

from june.cli import app
from june.smoke import run_checks
from tests.conftest import free_port


@pytest.mark.slow  # vLLM behind `gateway_url`
def test_every_check_passes_against_a_running_gateway(gateway_url):
    result = CliRunner().invoke(app, ["smoke", "--base-url", gateway_url], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for check in ("models", "chat", "stream", "tool call", "speech", "transcription"):
        assert check in result.output
    assert "all 6 checks passed" in result.output


def test_closed_port_fails_readably_without_a_traceback():
    url = f"http://127.0.0.1:{free_port()}"
    out = subprocess.run(
        [sys.executable, "-m", "june.smoke", "--base-url", url],
        capture_output=True, text=True, timeout=60, env={"COLUMNS": "200", "PATH": ""},
    )  # fmt: skip
    assert out.returncode == 1
    assert "Traceback" not in out.stdout + out.stderr
    assert "cannot reach" in out.stdout and "Connection refused" in out.stdout
    assert "1 of 6 checks failed: models" in out.stdout
    assert out.stdout.count("skipped: the deployment is unreachable") == 5


@respx.mock(base_url="http://gw.test", assert_all_called=False)
def test_a_refusing_gateway_is_reported_per_check(respx_mock):
    refusal = httpx.Response(
        401,
        json={
            "error": {
                "message": "Invalid API key",
                "type": "authentication_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
    )
    respx_mock.get("/v1/models").mock(return_value=refusal)
    respx_mock.post("/v1/audio/speech").mock(return_value=refusal)
    with httpx.Client(base_url="http://gw.test") as client:
        results = {c.name: c for c in run_checks(client)}
    assert results["models"].status == "fail" and results["models"].detail == "HTTP 401: Invalid API key"
    assert results["chat"].status == "skip" and "no model" in results["chat"].detail
    assert results["speech"].status == "fail"
    assert results["transcription"].status == "skip"
