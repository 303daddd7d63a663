"""Hostile and malformed request bodies against a real gateway: every one gets a 4xx in the OpenAI
envelope before it reaches the upstream, never a 500; the model allow-list holds whatever the
media type's spelling, for a missing model and for multipart uploads."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from gateway.app import create_app
from tests.gateway.conftest import gateway_settings, serve_in_thread
from tests.gateway.stub_upstream import MODEL, OTHER_MODEL, StubUpstream

JSON_ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/audio/speech")
FORM_ROUTES = ("/v1/audio/transcriptions", "/v1/audio/translations")
VALID = json.dumps(
    {"model": MODEL, "messages": [{"role": "user", "content": "caf\u00e9 [1, {2}]"}], "stream": False}
).encode()


def _nested(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    if kind == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b'[{"a":' * (depth // 2) + b"1" + b"}]" * (depth // 2)  # alternating


def _in_field(value: bytes) -> bytes:
    return b'{"model": "' + MODEL.encode() + b'", "messages": [], "x": ' + value + b"}"


def _hostile_bodies() -> Iterator[tuple[str, bytes]]:
    """(family, body) pairs: several sizes and placements of each way a JSON body can be wrong."""
    for depth in (65, 200, 999, 1000, 1001, 5000, 100_000):
        for kind in ("array", "object", "mixed"):
            yield f"deep {kind} {depth}", _nested(depth, kind)
            yield f"deep {kind} {depth} in a field", _in_field(_nested(depth, kind))
    for bad in (b"\xff", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"):
        yield f"invalid utf-8 {bad!r} in content", _in_field(b'"caf' + bad + b'"')
        yield f"invalid utf-8 {bad!r} in model", b'{"model": "' + bad + b'", "messages": []}'
        yield f"invalid utf-8 {bad!r} in a key", b'{"model": "' + MODEL.encode() + b'", "' + bad + b'": 1}'
    for escape in (b"\\ud800", b"\\udfff", b"\\ud800x", b"\\udc00\\ud800", b"\\ud83d"):
        yield f"lone surrogate {escape!r} in content", _in_field(b'"a' + escape + b'"')
        yield f"lone surrogate {escape!r} in model", b'{"model": "' + escape + b'"}'
    for number in (b"1e400", b"-1e400", b"1" + b"0" * 5000, b"-" + b"9" * 4301, b"1.5e99999"):
        yield f"huge number {number[:8]!r}", _in_field(number)
    for literal in (b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"undefined", b"0x10", b"+1", b".5", b"01"):
        yield f"non-JSON number {literal!r}", _in_field(literal)
    for model in (b"5", b"1.5", b"true", b"[]", b"{}", b'["' + MODEL.encode() + b'"]', b'{"id": "x"}'):
        yield f"model of the wrong type {model!r}", b'{"model": ' + model + b', "messages": []}'
    for top in (b"[]", b'"text"', b"1", b"null", b"true", b'[{"model": "x"}]'):
        yield f"top level {top!r}", top
    for blank in (b"", b" ", b"\r\n\t"):
        yield f"empty body {blank!r}", blank
    for cut in (1, 2, 10, len(VALID) // 2, len(VALID) - 1):
        yield f"truncated at {cut}", VALID[:cut]
    yield "trailing garbage", VALID + b"x"
    yield "two objects", VALID + VALID
    yield "byte order mark", b"\xef\xbb\xbf" + VALID
    yield "utf-16", VALID.decode().encode("utf-16")
    yield "single quotes", b"{'model': 'x'}"
    yield "comment", b'{"model": "x" /* hi */}'
    yield "trailing comma", b'{"model": "x",}'
    yield "control character in a string", b'{"model": "a\x01b"}'
    yield "nul bytes", b"\x00" * 64


CASES = list(_hostile_bodies())


def _assert_envelope(r: httpx.Response, *statuses: int) -> dict:
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["message"]
    return error


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_malformed_json_bodies_are_400s_that_never_reach_the_upstream(gw: str, stub: StubUpstream, route: str) -> None:
    failures = []
    with httpx.Client(base_url=gw, timeout=30) as client:
        for family, body in CASES:
            r = client.post(route, content=body, headers={"content-type": "application/json"})
            if r.status_code != 400 or r.headers.get("content-type") != "application/json":
                failures.append((family, r.status_code, r.text[:120]))
                continue
            error = _assert_envelope(r, 400)
            if family.startswith("model of the wrong type"):
                assert (error["param"], error["code"]) == ("model", "invalid_value"), family
            else:
                assert error["code"] == "invalid_json", family
    assert failures == []
    assert stub.seen == []
    assert client_ok(gw)  # and the gateway carries on


def client_ok(gw: str) -> bool:
    return (
        httpx.post(f"{gw}/v1/chat/completions", content=VALID, headers={"content-type": "application/json"}).status_code
        == 200
    )


def test_what_passes_reaches_the_upstream_byte_for_byte(gw: str, stub: StubUpstream) -> None:
    # Deep but within the limit, big integers Python also reads, escapes, non-ASCII: all valid JSON.
    body = _in_field(
        b'{"deep": ' + _nested(60, "array") + b', "n": ' + b"9" * 4300 + b', "s": "\\u00e9\\ud83d\\ude00 \xe2\x9c\x93"}'
    )
    r = httpx.post(f"{gw}/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert stub.seen[-1].body == body


def test_json_size_and_depth_are_settings(stub_url: str, stub: StubUpstream) -> None:
    settings = gateway_settings(stub_url, max_json_bytes=4096, max_json_depth=8)
    with serve_in_thread(create_app(settings)) as url, httpx.Client(base_url=url) as client:
        big = _in_field(b'"' + b"a" * 5000 + b'"')
        error = _assert_envelope(
            client.post("/v1/chat/completions", content=big, headers={"content-type": "application/json"}), 413
        )
        assert error["code"] == "request_too_large" and "4096" in error["message"]
        chunked = client.post(
            "/v1/chat/completions", content=iter([big[:3000], big[3000:]]), headers={"content-type": "application/json"}
        )
        assert _assert_envelope(chunked, 413)["code"] == "request_too_large"  # no Content-Length to go by
        error = _assert_envelope(
            client.post(
                "/v1/chat/completions",
                content=_in_field(_nested(8, "array")),
                headers={"content-type": "application/json"},
            ),
            400,
        )
        assert "8 levels" in error["message"]
        assert (
            client.post(
                "/v1/chat/completions",
                content=_in_field(_nested(7, "array")),
                headers={"content-type": "application/json"},
            ).status_code
            == 200
        )
        # Audio uploads keep the larger body limit.
        form = _form([("model", "whisper-1"), ("file", ("a.wav", b"R" * 10_000))])
        assert (
            client.post("/v1/audio/transcriptions", content=form, headers={"content-type": FORM_TYPE}).status_code
            == 200
        )
    assert len(stub.seen) == 2


# --- media types and the allow-list -------------------------------------------------------------

RESTRICTED = "sk-only-other"
BOUNDARY = "june-hostile-7d3f"
FORM_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


@pytest.fixture(scope="module")
def allow_gw(stub_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway whose RESTRICTED key may use OTHER_MODEL only (and "whisper-1" for speech)."""
    keys_file = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys_file.write_text(f"{RESTRICTED} {OTHER_MODEL},whisper-1\n")
    settings = gateway_settings(stub_url, api_keys=[SecretStr("sk-all")], api_keys_file=keys_file)
    with serve_in_thread(create_app(settings)) as url:
        yield url


def _auth(key: str = RESTRICTED) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _chat(model: object) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "APPLICATION/JSON; charset=UTF-8",
        "application/json ;charset=utf-8",
        'application/json;foo="a;b"',
    ],
)
@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/completions"])
def test_the_allow_list_holds_for_any_spelling_of_json(
    allow_gw: str, stub: StubUpstream, content_type: str, route: str
) -> None:
    r = httpx.post(f"{allow_gw}{route}", content=_chat(MODEL), headers={**_auth(), "content-type": content_type})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "model_not_allowed")
    assert stub.seen == []
    r = httpx.post(f"{allow_gw}{route}", content=_chat(OTHER_MODEL), headers={**_auth(), "content-type": content_type})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", "application/json-seq", "json", "", None],
)
@pytest.mark.parametrize("route", JSON_ROUTES)
def test_json_endpoints_refuse_other_media_types_with_415(
    allow_gw: str, stub: StubUpstream, content_type: str | None, route: str
) -> None:
    headers = _auth("sk-all") | ({"content-type": content_type} if content_type is not None else {})
    r = httpx.post(f"{allow_gw}{route}", content=_chat(MODEL), headers=headers)
    error = _assert_envelope(r, 415)
    assert error["code"] == "unsupported_media_type" and "application/json" in error["message"]
    assert stub.seen == []


@pytest.mark.parametrize("route", FORM_ROUTES)
@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "audio/wav"])
def test_upload_endpoints_refuse_other_media_types_with_415(
    allow_gw: str, stub: StubUpstream, route: str, content_type: str
) -> None:
    r = httpx.post(
        f"{allow_gw}{route}",
        content=b'{"model": "whisper-1"}',
        headers=_auth("sk-all") | {"content-type": content_type},
    )
    assert _assert_envelope(r, 415)["code"] == "unsupported_media_type"
    assert stub.seen == []


def test_two_content_types_are_refused(allow_gw: str, stub: StubUpstream) -> None:
    # The gateway would read the body by one and the upstream by the other.
    headers = [
        ("authorization", f"Bearer {RESTRICTED}"),
        ("content-type", "text/plain"),
        ("content-type", "application/json"),
    ]
    r = httpx.post(f"{allow_gw}/v1/chat/completions", content=_chat(MODEL), headers=headers)
    _assert_envelope(r, 400)
    assert stub.seen == []


@pytest.mark.parametrize(
    "body", [b'{"messages": []}', b'{"model": null, "messages": []}', b'{"model": "", "messages": []}']
)
@pytest.mark.parametrize("route", JSON_ROUTES)
def test_a_restricted_key_must_name_its_model(allow_gw: str, stub: StubUpstream, body: bytes, route: str) -> None:
    # vLLM and speech serve their default model when none is named, which the key may not use.
    r = httpx.post(f"{allow_gw}{route}", content=body, headers=_auth() | {"content-type": "application/json"})
    error = _assert_envelope(r, 400)
    assert (error["param"], error["code"]) == ("model", "missing_model")
    assert stub.seen == []
    assert (
        httpx.post(
            f"{allow_gw}{route}", content=body, headers=_auth("sk-all") | {"content-type": "application/json"}
        ).status_code
        == 200
    )


def test_speech_json_is_held_to_the_allow_list(allow_gw: str, stub: StubUpstream) -> None:
    body = json.dumps({"model": "tts-1", "input": "hi", "voice": "af_heart"}).encode()
    r = httpx.post(f"{allow_gw}/v1/audio/speech", content=body, headers=_auth() | {"content-type": "application/json"})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "model_not_allowed")
    assert stub.seen == []


def _form(fields: list[tuple[str, object]], boundary: str = BOUNDARY) -> bytes:
    out = b""
    for name, value in fields:
        if isinstance(value, tuple):
            filename, data = value
            head = (
                f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\nContent-Type: audio/wav\r\n'
            )
        else:
            head, data = f'Content-Disposition: form-data; name="{name}"\r\n', str(value).encode()
        out += f"--{boundary}\r\n{head}\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


AUDIO = ("clip.wav", b"RIFF" + bytes(range(256)) * 200)


@pytest.mark.parametrize("route", FORM_ROUTES)
@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ([("model", "whisper-1"), ("file", AUDIO)], 200, None),
        ([("file", AUDIO), ("model", " whisper-1 ")], 200, None),  # after the file; speech strips it
        ([("model", "large-v3"), ("file", AUDIO)], 403, "model_not_allowed"),
        ([("file", AUDIO), ("model", "large-v3")], 403, "model_not_allowed"),  # after 50 KB of audio
        ([("model", "whisper-1"), ("model", "large-v3"), ("file", AUDIO)], 403, "model_not_allowed"),
        ([("file", AUDIO)], 400, "missing_model"),
        ([("model", ""), ("file", AUDIO)], 400, "missing_model"),
        ([("model", ("model.txt", b"whisper-1")), ("file", AUDIO)], 400, "invalid_multipart"),
        ([("model", "w" * 2000), ("file", AUDIO)], 400, "invalid_multipart"),
    ],
)
def test_upload_model_fields_are_held_to_the_allow_list(
    allow_gw: str, stub: StubUpstream, route: str, fields: list, status: int, code: str | None
) -> None:
    body = _form(fields)
    # Small pieces: the model field and the closing boundary arrive in separate reads.
    pieces = [body[i : i + 4096] for i in range(0, len(body), 4096)]
    r = httpx.post(f"{allow_gw}{route}", content=iter(pieces), headers=_auth() | {"content-type": FORM_TYPE})
    assert r.status_code == status, r.text
    if status == 200:
        assert r.json()["sha256"] and stub.seen[-1].body == body
    else:
        assert r.json()["error"]["code"] == code
        assert stub.seen == []  # the upstream never got a whole form


@pytest.mark.parametrize(
    "body",
    [
        _form([("model", "whisper-1"), ("file", AUDIO)])[:-30],  # ends before its closing boundary
        _form([("model", "whisper-1")], boundary="other-boundary"),
        b"not a form at all",
        b"",
    ],
)
def test_malformed_uploads_of_a_restricted_key_are_400s(allow_gw: str, stub: StubUpstream, body: bytes) -> None:
    r = httpx.post(f"{allow_gw}/v1/audio/transcriptions", content=body, headers=_auth() | {"content-type": FORM_TYPE})
    assert _assert_envelope(r, 400)["code"] in ("invalid_multipart", "missing_model")
    assert stub.seen == []


def test_a_form_without_a_boundary_is_a_400_for_a_restricted_key(allow_gw: str, stub: StubUpstream) -> None:
    body = _form([("model", "whisper-1"), ("file", AUDIO)])
    r = httpx.post(
        f"{allow_gw}/v1/audio/transcriptions", content=body, headers=_auth() | {"content-type": "multipart/form-data"}
    )
    assert _assert_envelope(r, 400)["code"] == "invalid_multipart"
    assert stub.seen == []
