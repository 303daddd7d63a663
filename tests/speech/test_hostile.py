"""Hostile and malformed requests against the real speech service: families of inputs (bad bytes,
deep nesting, overflowing numbers, NaN, empty or unspeakable text, out-of-range fields) always get
a 4xx in OpenAI's envelope naming the field at fault, never a 500, and the service stays up. Those
that reach the speech engine run once per engine (`tts_http`, tests/speech/conftest.py)."""

from __future__ import annotations

import json
import random

import httpx
import pytest

from core.audio import decode
from tests.clips import espeak_wav

HEADERS = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def http(speech_url: str):
    with httpx.Client(base_url=speech_url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return espeak_wav("Turn off the radio.", tmp_path_factory.mktemp("hostile") / "c.wav").read_bytes()


def check(r: httpx.Response, param: str | type[Ellipsis] | None = ..., status: int = 400) -> dict:
    assert r.status_code == status, (r.status_code, r.text[:300])
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"], err
    if param is not ...:
        assert err["param"] == param, err
    return err


def nested(depth: int, kind: str) -> str:
    return {"list": "[" * depth + "]" * depth, "dict": '{"a":' * depth + "1" + "}" * depth}[kind]


def bad_utf8(rng: random.Random) -> bytes:
    # Lone continuation bytes, truncated sequences, overlong forms, surrogates encoded, 0xff/0xfe.
    return rng.choice(
        [b"\x80", b"\xc3", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80", b"\xff\xfe", b"\xf8\x88\x80\x80\x80"]
    )


@pytest.mark.parametrize("seed", range(3))
def test_speech_bodies_that_are_not_valid_json_or_utf8_get_400(http: httpx.Client, seed: int) -> None:
    rng = random.Random(seed)
    bodies = [
        b'{"input": "hi ' + bad_utf8(rng) + b' there"}',
        b'{"input": "hi", "voice": "' + bad_utf8(rng) + b'"}',
        bad_utf8(rng) * rng.randint(1, 50),
        b'{"input": "hi", "x": ' + nested(rng.randint(300, 3000), rng.choice(["list", "dict"])).encode() + b"}",
        nested(rng.randint(300, 3000), rng.choice(["list", "dict"])).encode(),
        b'{"input": ' + nested(1000, "list").encode() + b"}",
        b"",
        b'{"input": "hi"',
        b'"just a string"',
        b"[1, 2, 3]",
    ]
    for body in bodies:
        check(http.post("/v1/audio/speech", content=body, headers=HEADERS))
    check(http.post("/v1/audio/speech", content=b'{"input": "hi \xff"}', headers=HEADERS))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("speed", "1e400"), ("speed", "-1e400"), ("speed", "NaN"), ("speed", "Infinity"), ("speed", "0"),
        ("speed", "4.01"), ("speed", "0.2"), ("speed", '"fast"'), ("speed", "null"),
        ("response_format", '"ogg"'), ("response_format", "7"), ("stream_format", '"ws"'),
        ("input", "1e400"), ("input", "null"), ("input", '""'), ("input", '"🎉 🚀"'),
        ("input", '"```\\ncode only\\n```"'), ("input", '"https://example.com"'),
        ("input", json.dumps("x" * 4097)), ("voice", json.dumps("v" * 300)), ("model", json.dumps("m" * 300)),
    ],
)  # fmt: skip
def test_out_of_range_or_unspeakable_fields_name_the_field(tts_http: httpx.Client, field: str, value: str) -> None:
    body = {"input": '"Hello there."', field: value}
    raw = "{" + ", ".join(f'"{k}": {v}' for k, v in body.items()) + "}"
    check(tts_http.post("/v1/audio/speech", content=raw.encode(), headers=HEADERS), field)


@pytest.mark.parametrize(
    "voice",
    [
        "jf_alpha(1" + "0" * 400 + ")+jf_nezumi(1)",  # inf: inf/inf is NaN
        "jf_alpha(" + "9" * 309 + ")+jf_nezumi(" + "9" * 309 + ")",  # finite each, inf together
        "jf_alpha(1e400)+jf_nezumi(1)",
        "jf_alpha(0)+jf_nezumi(0)",
        "jf_alpha(-1)",
        "jf_alpha(nan)",
        "jf_alpha(inf)",
        "+",
        "jf_alpha(1)+",
        "jf_alpha((1))",
        "nobody(1)+jf_alpha(1)",
    ],
)
def test_voice_mixes_with_bad_weights_name_voice(http: httpx.Client, voice: str) -> None:
    check(http.post("/v1/audio/speech", json={"input": "Hello there.", "voice": voice}), "voice")


def test_speech_that_would_take_too_long_names_input(tts_http: httpx.Client) -> None:
    """Digits and symbols expand into many words: the cost bound counts what is spoken, not characters."""
    for text in ("1234567890 " * 200, "$1,000,000.99 " * 150, "1/2/3/4/5/6/7/8/9 " * 200):
        assert len(text) <= 4096
        err = check(tts_http.post("/v1/audio/speech", json={"input": text}), "input")
        assert "limit is 240 s" in err["message"], err
    err = check(tts_http.post("/v1/audio/speech", json={"input": "Good morning. " * 80, "speed": 0.25}), "input")
    assert "speed 0.25" in err["message"], err


def test_text_is_never_read_as_raw_phonemes(tts_http: httpx.Client) -> None:
    """Piper reads [[ … ]] as phonemes, where capitals mean nothing: a request's text is spoken as
    text, so these words are heard, not dropped."""
    r = tts_http.post("/v1/audio/speech", json={"input": "[[ONE HUNDRED TWENTY THREE]]", "response_format": "wav"})
    assert r.status_code == 200, r.text[:300]
    assert len(decode(r.content, 16000)) / 16000 > 1.0
    for text in ("[[ ]]", "]] [[ ]] [[", "Say [[" + "a" * 40 + "]] now."):
        r = tts_http.post("/v1/audio/speech", json={"input": text, "response_format": "wav"})
        assert r.status_code == 200 or check(r, "input"), (text, r.status_code, r.text[:300])
