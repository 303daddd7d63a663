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
    return openai.OpenAI(base_url=f"{gateway_url}/v1", api_key="unused", http_client=httpx.Client(timeout=120), max_retries=0)


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
