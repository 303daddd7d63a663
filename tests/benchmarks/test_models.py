"""OpenAIModel against a stand-in chat endpoint: the agent's `native_tools` alone decides whether tool
schemas (and `tool_choice`) go out."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from benchmarks.agent import Agent, AgentConfig
from benchmarks.models import OpenAIModel
from benchmarks.sandbox import Sandbox
from benchmarks.tools import Tools


class _JSONEndpoint(BaseHTTPRequestHandler):
    """A stand-in chat endpoint: each POST's JSON body goes to `answer`, whose (status, JSON) is the reply."""

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError

    def do_POST(self) -> None:
        status, reply = self.answer(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class _Endpoint(_JSONEndpoint):
    """Answers every chat completion with a fenced `submit` and keeps the request bodies on the server."""

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.server.bodies.append(body)  # type: ignore[attr-defined]
        message = {"role": "assistant", "content": "```bash\nsubmit\n```"}
        return 200, {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
                     "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
                     "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}  # fmt: skip


class _FullContext(_JSONEndpoint):
    """Refuses every chat completion as vLLM does once the conversation outgrows --max-model-len."""

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 400, {"error": {"message": "This model's maximum context length is 4096 tokens. However, your prompt "
                                          "contains at least 4097 input tokens.", "type": "BadRequestError",
                               "param": "input_tokens", "code": 400}}  # fmt: skip


@contextlib.contextmanager
def _serve(handler: type[_JSONEndpoint]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(base URL …/v1, the request bodies `handler` kept) of a server on 127.0.0.1 for the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.bodies = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1", server.bodies  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def endpoint() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(base URL …/v1, the request bodies it received)."""
    with _serve(_Endpoint) as served:
        yield served


@pytest.mark.parametrize("native_tools", [True, False])
def test_tool_schemas_follow_the_agent_config(
    endpoint: tuple[str, list[dict[str, Any]]], tmp_path: Path, native_tools: bool
) -> None:
    url, bodies = endpoint
    model = OpenAIModel(base_url=url, model="m")
    outcome = Agent(model, Tools(Sandbox(tmp_path)), AgentConfig(native_tools=native_tools)).run("do it")
    assert (outcome.status, outcome.prompt_tokens) == ("submitted", 5)
    (body,) = bodies
    if native_tools:
        assert [t["function"]["name"] for t in body["tools"]] == ["bash", "editor", "submit"]
        assert body["tool_choice"] == "required"
    else:
        assert "tools" not in body and "tool_choice" not in body


def test_a_conversation_longer_than_the_context_is_a_limit_not_an_error(tmp_path: Path) -> None:
    """HumanEval/76 on the 1.5B (4096-token context): the agent's turns outgrew it and the task was
    reported as a harness error."""
    with _serve(_FullContext) as (url, _):
        outcome = Agent(OpenAIModel(base_url=url, model="m"), Tools(Sandbox(tmp_path)), AgentConfig()).run("do it")
    assert outcome.status == "context_limit" and "maximum context length" in (outcome.error or "")
