"""The official OpenAI SDK, pointed at the gateway, works as it does against OpenAI."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.gateway.conftest import KEYS
from tests.gateway.stub_upstream import AUDIO_CHUNKS, MODEL, MODELS, SSE_TEXT, StubUpstream


def _client(base: str, key: str) -> openai.OpenAI:
    # The SDK's own transport is invisible to test tooling; a plain httpx client keeps it ordinary.
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, http_client=httpx.Client(), max_retries=0)


def test_chat_stream_through_the_gateway(keyed_gw: str) -> None:
    client = _client(keyed_gw, KEYS[1])
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == SSE_TEXT
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_chat_models_speech_and_transcription(keyed_gw: str, stub: StubUpstream) -> None:
    client = _client(keyed_gw, KEYS[0])
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], extra_body={"top_k": 5}
    )
    assert reply.choices[0].message.content == SSE_TEXT
    assert json.loads(stub.seen[-1].body)["top_k"] == 5
    assert [m.id for m in client.models.list()] == [m["id"] for m in MODELS["data"]]
    assert client.audio.speech.create(model="kokoro", voice="af_heart", input="hi").read() == b"".join(AUDIO_CHUNKS)
    transcript = client.audio.transcriptions.create(model="whisper-1", file=("clip.wav", b"RIFF0000WAVE"))
    assert transcript.text.endswith(" bytes")
    uploads = [s for s in stub.seen if s.path == "/v1/audio/transcriptions"]
    assert b"RIFF0000WAVE" in uploads[0].body


def test_wrong_key_raises_the_sdks_authentication_error(keyed_gw: str) -> None:
    with pytest.raises(openai.AuthenticationError) as raised:
        _client(keyed_gw, "sk-wrong").models.list()
    assert raised.value.code == "invalid_api_key"
