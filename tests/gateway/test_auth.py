"""Bearer keys on /v1 when configured; /health stays open."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from gateway.auth import bearer_key, key_matches
from tests.gateway.conftest import KEYS
from tests.gateway.stub_upstream import MODELS, StubUpstream


def _assert_invalid_key(r: httpx.Response) -> None:
    assert r.status_code == 401
    error = r.json()["error"]
    assert error["type"] == "authentication_error"
    assert error["code"] == "invalid_api_key"
    assert error["param"] is None
    assert error["message"]


def test_health_needs_no_key(keyed_gw: str) -> None:
    r = httpx.get(f"{keyed_gw}/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/audio/transcriptions"),
        ("GET", "/v1/audio/voices"),
    ],
)
def test_missing_key_is_rejected_before_the_upstream(keyed_gw: str, stub: StubUpstream, method: str, path: str) -> None:
    r = httpx.request(method, f"{keyed_gw}{path}", content=b"{}" if method == "POST" else None)
    _assert_invalid_key(r)
    assert stub.seen == []


@pytest.mark.parametrize(
    "authorization",
    ["Bearer wrong", f"Bearer {KEYS[0]}x", f"Basic {KEYS[0]}", f"{KEYS[0]}", "Bearer", f"Bearer {KEYS[0][:-1]}"],
)
def test_wrong_key_is_rejected(keyed_gw: str, stub: StubUpstream, authorization: str) -> None:
    _assert_invalid_key(httpx.get(f"{keyed_gw}/v1/models", headers={"authorization": authorization}))
    assert stub.seen == []


@pytest.mark.parametrize("key", KEYS)
def test_each_configured_key_is_accepted_and_not_forwarded(keyed_gw: str, stub: StubUpstream, key: str) -> None:
    r = httpx.get(f"{keyed_gw}/v1/models", headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 200
    assert r.json() == MODELS
    assert stub.seen[-1].header("authorization") is None


def test_open_gateway_needs_no_key(gw: str) -> None:
    assert httpx.get(f"{gw}/v1/models").status_code == 200


def test_bearer_key_parsing() -> None:
    assert bearer_key("Bearer abc") == "abc"
    assert bearer_key("bearer  abc ") == "abc"
    assert bearer_key("Token abc") is None
    assert bearer_key(None) is None
    assert bearer_key("Bearer") is None


def test_key_matches() -> None:
    keys = [SecretStr("a1"), SecretStr("b2")]
    assert key_matches("b2", keys)
    assert not key_matches("b", keys)
    assert not key_matches("a1", [])
    assert key_matches("ключ", [SecretStr("ключ")])  # non-ASCII keys compare as bytes
