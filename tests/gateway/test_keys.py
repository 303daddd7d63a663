"""Keys from a file with per-key model allow-lists, and /metrics behind its own key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from gateway.app import create_app
from gateway.auth import make_key, parse_keys_file
from tests.gateway.conftest import gateway_settings, serve_in_thread
from tests.gateway.stub_upstream import MODEL, MODELS, OTHER_MODEL, StubUpstream

KEYS_FILE = f"""\
# june gateway keys
sk-all
sk-only-other   {OTHER_MODEL}
sk-both {MODEL},{OTHER_MODEL}   # trailing comment
"""


@pytest.fixture(scope="module")
def file_gw(stub_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("keys") / "keys.txt"
    path.write_text(KEYS_FILE)
    settings = gateway_settings(
        stub_url, api_keys=[SecretStr("sk-from-env")], api_keys_file=path, metrics_key=SecretStr("sk-metrics")
    )
    with serve_in_thread(create_app(settings)) as url:
        yield url


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _chat(url: str, key: str, model: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        headers=_auth(key),
    )


@pytest.mark.parametrize("key", ["sk-all", "sk-both", "sk-from-env"])
def test_keys_without_or_with_a_matching_allow_list_reach_any_listed_model(file_gw: str, key: str) -> None:
    assert _chat(file_gw, key, MODEL).status_code == 200
    assert _chat(file_gw, key, OTHER_MODEL).status_code == 200


def test_model_outside_the_allow_list_is_a_403_envelope_before_the_upstream(file_gw: str, stub: StubUpstream) -> None:
    r = _chat(file_gw, "sk-only-other", MODEL)
    assert r.status_code == 403
    assert r.json() == {
        "error": {
            "message": f"This API key may not use the model '{MODEL}'.",
            "type": "permission_error",
            "param": "model",
            "code": "model_not_allowed",
        }
    }
    assert stub.seen == []
    assert _chat(file_gw, "sk-only-other", OTHER_MODEL).status_code == 200
    r = httpx.post(f"{file_gw}/v1/completions", json={"model": MODEL, "prompt": "x"}, headers=_auth("sk-only-other"))
    assert r.status_code == 403


def test_model_list_is_filtered_to_the_allow_list(file_gw: str) -> None:
    r = httpx.get(f"{file_gw}/v1/models", headers=_auth("sk-only-other"))
    assert r.status_code == 200
    assert r.json() == {"object": "list", "data": [m for m in MODELS["data"] if m["id"] == OTHER_MODEL]}
    assert httpx.get(f"{file_gw}/v1/models", headers=_auth("sk-all")).json() == MODELS
    assert httpx.get(f"{file_gw}/v1/models/{MODEL}", headers=_auth("sk-only-other")).status_code == 403
    assert httpx.get(f"{file_gw}/v1/models/{OTHER_MODEL}", headers=_auth("sk-only-other")).status_code == 200


def test_unknown_key_is_still_401(file_gw: str) -> None:
    assert _chat(file_gw, "sk-nope", MODEL).status_code == 401


def test_metrics_wants_its_own_key_health_and_ready_stay_open(file_gw: str) -> None:
    assert httpx.get(f"{file_gw}/metrics").status_code == 401
    assert httpx.get(f"{file_gw}/metrics", headers=_auth("sk-all")).status_code == 401
    r = httpx.get(f"{file_gw}/metrics", headers=_auth("sk-metrics"))
    assert r.status_code == 200 and "june_gateway_requests_total" in r.text
    assert httpx.get(f"{file_gw}/health").status_code == 200
    assert httpx.get(f"{file_gw}/ready").json() == {"status": "ready", "upstreams": {"llm": True, "speech": True}}


def test_parse_keys_file() -> None:
    keys = parse_keys_file(KEYS_FILE)
    assert [k.secret for k in keys] == [b"sk-all", b"sk-only-other", b"sk-both"]
    assert [k.models for k in keys] == [None, frozenset({OTHER_MODEL}), frozenset({MODEL, OTHER_MODEL})]
    assert keys[0].id == make_key("sk-all").id and keys[0].id.startswith("key-") and "sk-all" not in keys[0].id
    with pytest.raises(ValueError, match="line 2"):
        parse_keys_file("ok\nsk-x a,b extra\n")


def test_a_missing_keys_file_fails_at_start(stub_url: str, tmp_path: Path) -> None:
    with pytest.raises(OSError):
        create_app(gateway_settings(stub_url, api_keys_file=tmp_path / "absent.txt"))
