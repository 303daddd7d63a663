"""The real vLLM server on CPU (fixture `llm_url`: `python -m june.llm`, offline Qwen2.5-Coder-0.5B)."""

from __future__ import annotations

import json

import httpx
import pytest

pytestmark = pytest.mark.slow

MODEL = "qwen2.5-coder-0.5b-instruct"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name, e.g. Paris"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def client(llm_url: str):
    with httpx.Client(base_url=llm_url, timeout=120) as c:
        yield c


def test_models_lists_the_served_name(client: httpx.Client) -> None:
    r = client.get("/v1/models")
    assert r.status_code == 200
    assert [m["id"] for m in r.json()["data"]] == [MODEL]
    assert r.json()["data"][0]["max_model_len"] == 4096


def test_chat_completion_answers(client: httpx.Client) -> None:
    r = client.post(
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "What is 2 + 3? Answer with just the number."}],
            "max_tokens": 8,
            "temperature": 0,
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert "5" in body["choices"][0]["message"]["content"]
    assert body["model"] == MODEL and body["usage"]["completion_tokens"] <= 8


def test_streaming_yields_sse_chunks(client: httpx.Client) -> None:
    request = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say hello in three words."}],
        "max_tokens": 12,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with client.stream("POST", "/v1/chat/completions", json=request) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[len("data: ") :]) for line in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.strip()
    assert len([c for c in chunks if c["choices"]]) >= 3  # several deltas, not one buffered answer
    assert chunks[-1]["usage"]["completion_tokens"] >= 1


def test_required_tool_choice_returns_tool_calls(client: httpx.Client) -> None:
    r = client.post(
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "What's the weather in Paris right now?"}],
            "tools": [WEATHER_TOOL],
            "tool_choice": "required",
            "max_tokens": 64,
            "temperature": 0,
        },
    )
    assert r.status_code == 200, r.text
    message = r.json()["choices"][0]["message"]
    calls = message["tool_calls"]
    assert calls and calls[0]["type"] == "function"
    assert calls[0]["function"]["name"] == "get_weather"
    assert "city" in json.loads(calls[0]["function"]["arguments"])
