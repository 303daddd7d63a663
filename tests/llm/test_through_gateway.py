"""The real CPU vLLM behind the real gateway (`python -m gateway`), driven with the OpenAI SDK."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.llm.test_openai_server import MODEL, WEATHER_TOOL

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(gateway_url: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{gateway_url}/v1", api_key="unused", http_client=httpx.Client(timeout=120), max_retries=0
    )


def test_tool_call_through_the_gateway(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What's the weather in Paris right now?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
        max_tokens=48,
        temperature=0,
    )
    calls = reply.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "get_weather"
    assert "city" in json.loads(calls[0].function.arguments)


def test_stream_through_the_gateway_arrives_in_deltas_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count: one, two, three"}],
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(deltas) >= 3 and "".join(deltas).strip()
    assert chunks[-1].usage is not None and 1 <= chunks[-1].usage.completion_tokens <= 8
    assert all(getattr(c.choices[0].delta, "reasoning", None) is None for c in chunks if c.choices)


def test_reasoning_stays_out_of_content_streamed_or_not(client: openai.OpenAI) -> None:
    # The test server runs vLLM's qwen3 reasoning parser (conftest.REASONING_ARGS); this request turns
    # thinking on, and a grammar makes Qwen2.5 write a trace that ends in </think>, as Qwen3 does.
    ask = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
        "max_tokens": 40,
        "temperature": 0,
        "extra_body": {
            "chat_template_kwargs": {"enable_thinking": True},
            "structured_outputs": {"regex": r"[A-Za-z ,']{10,80}\.</think>[A-Z][a-z]+\."},
        },
    }
    message = client.chat.completions.create(**ask).choices[0].message
    reasoning = getattr(message, "reasoning", None)
    assert reasoning and message.content, message
    assert "think>" not in reasoning + message.content and reasoning not in message.content

    deltas = [c.choices[0].delta for c in client.chat.completions.create(**ask, stream=True) if c.choices]
    parts = [(getattr(d, "reasoning", None) or "", d.content or "") for d in deltas]
    assert not any(r and c for r, c in parts)  # no delta carries both
    kinds = ["reasoning" if r else "content" for r, c in parts if r or c]
    assert kinds[0] == "reasoning" and "content" in kinds and "reasoning" not in kinds[kinds.index("content") :]
    assert "".join(r for r, _ in parts).strip() == reasoning.strip()
    assert "".join(c for _, c in parts).strip() == message.content.strip()
