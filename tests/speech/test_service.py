"""The real speech service (`python -m speech`, faster-whisper base + Kokoro ONNX) over HTTP.

Clips are spoken by espeak-ng at test time; transcripts are scored by word error rate.
Kokoro's offline voices are Japanese and Whisper base may hear them as Japanese when left to
detect the language, so round trips pass language="en", as june's bots do.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from speech.audio import decode, encode
from tests.clips import espeak_wav, wer

SENTENCE = "Please turn on the kitchen lights before dinner."
SPOKEN = "Hello, this is a test of the speech service."


@pytest.fixture(scope="module")
def clip_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return espeak_wav(SENTENCE, tmp_path_factory.mktemp("clips") / "clip.wav").read_bytes()


@pytest.fixture(scope="module")
def http(speech_url: str):
    with httpx.Client(base_url=speech_url, timeout=60) as client:
        yield client


def transcribe(http: httpx.Client, data: bytes, name: str, **fields: str) -> httpx.Response:
    return http.post("/transcribe", files={"file": (name, data)}, data=fields)


def assert_openai_error(r: httpx.Response, status: int, param: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if param is not None:
        assert err["param"] == param, err
    return err


@pytest.mark.parametrize("fmt", ["wav", "opus"])
def test_espeak_clip_transcribes(http: httpx.Client, clip_wav: bytes, fmt: str) -> None:
    data = clip_wav if fmt == "wav" else encode(decode(clip_wav, 24000), 24000, "opus")
    r = transcribe(http, data, f"clip.{'ogg' if fmt == 'opus' else 'wav'}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert wer(SENTENCE, body["text"]) <= 0.2, body
    assert body["language"] == "en"
    assert 1.5 < body["duration"] < 6.0


@pytest.mark.parametrize(("fmt", "content_type"), [("opus", "audio/ogg"), ("wav", "audio/wav")])
def test_speak_then_transcribe_round_trip(http: httpx.Client, fmt: str, content_type: str) -> None:
    r = http.post("/speak", json={"input": SPOKEN, "voice": "jf_alpha", "response_format": fmt})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == content_type
    if fmt == "opus":
        assert r.content.startswith(b"OggS") and b"OpusHead" in r.content[:100]
    else:
        assert r.content[:4] == b"RIFF"
    t = transcribe(http, r.content, f"speech.{fmt}", language="en", response_format="verbose_json")
    assert t.status_code == 200, t.text
    body = t.json()
    assert wer(SPOKEN, body["text"]) <= 0.2, body
    assert body["segments"] and body["duration"] > 1.0


def test_text_response_format(http: httpx.Client, clip_wav: bytes) -> None:
    r = transcribe(http, clip_wav, "clip.wav", response_format="text", language="en")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert wer(SENTENCE, r.text) <= 0.2, r.text


def test_openai_sdk(speech_url: str, clip_wav: bytes) -> None:
    client = openai.OpenAI(base_url=speech_url + "/v1", api_key="x", http_client=httpx.Client(timeout=60))
    t = client.audio.transcriptions.create(model="whisper-1", file=("clip.wav", clip_wav), language="en")
    assert wer(SENTENCE, t.text) <= 0.2, t.text
    speech = client.audio.speech.create(model="tts-1", voice="alloy", input="Good morning.", response_format="mp3")
    data = speech.read()
    assert len(decode(data)) > 0.3 * 16000  # real, decodable MP3 of some length
    pcm = client.audio.speech.create(model="gpt-4o-mini-tts", voice="onyx", input="Yes.", response_format="pcm")
    assert len(pcm.read()) % 2 == 0 and len(pcm.read()) > 0.1 * 24000 * 2


def test_voices_list(http: httpx.Client) -> None:
    body = http.get("/v1/audio/voices").json()
    assert {v["id"] for v in body["data"]} >= {"jf_alpha", "jm_kumo"}
    assert body["aliases"]["alloy"] in {v["id"] for v in body["data"]}
    assert body["default"] == "jf_alpha"


def test_bad_inputs_get_openai_errors_and_service_stays_up(http: httpx.Client, tmp_path: Path) -> None:
    err = assert_openai_error(transcribe(http, bytes(range(256)) * 64, "x.ogg"), 415, "file")
    assert err["code"] == "unsupported_audio_format"
    assert_openai_error(transcribe(http, b"", "empty.wav"), 400, "file")
    assert_openai_error(http.post("/v1/audio/transcriptions", data={"model": "whisper-1"}), 400, "file")
    assert_openai_error(http.post("/speak", json={"input": ""}), 400, "input")
    assert_openai_error(http.post("/speak", json={"input": "   "}), 400, "input")
    err = assert_openai_error(http.post("/v1/audio/speech", json={"input": "hi", "voice": "nobody"}), 400, "voice")
    assert "nobody" in err["message"]
    assert_openai_error(http.post("/speak", json={"input": "hi", "response_format": "ogg"}), 400, "response_format")
    assert_openai_error(http.post("/speak", content=b"{not json", headers={"content-type": "application/json"}), 400)
    assert http.get("/health").status_code == 200


def test_upload_over_limit_is_413(http: httpx.Client) -> None:
    big = b"\0" * (25 * 1024 * 1024 + 10)
    r = transcribe(http, big, "big.wav")
    assert r.status_code == 413, r.text[:300]
    assert r.json()["error"]["message"]
    assert http.get("/health").status_code == 200
