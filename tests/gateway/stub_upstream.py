"""A small OpenAI-compatible upstream for the gateway tests: it records what reaches it.

One app plays both upstreams (LLM and speech). Chat requests steer it with an extra JSON field,
`"stub": {"sleep": s, "hold": s, "status": code, "repeat": n, "die_after": n}`, which doubles as an
unknown field the gateway must pass on untouched. SSE chunks are fixed bytes with odd spacing, an escaped and a literal
non-ASCII character and an unknown field, so any re-serialisation on the way shows.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from litestar import Litestar, Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Stream

MODEL = "stub-model"

OTHER_MODEL = "stub-other"
MODELS = {
    "object": "list",
    "data": [
        {"id": MODEL, "object": "model", "created": 1700000000, "owned_by": "stub"},
        {"id": OTHER_MODEL, "object": "model", "created": 1700000000, "owned_by": "stub"},
    ],
}

CHAT_COMPLETION = (
    b'{"id":"chatcmpl-stub","object":"chat.completion","created":1700000000,"model":"stub-model",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"Hello \xe2\x9c\x93"},'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}'
)


def _chunk(delta: str, finish: str = "null", extra: str = "") -> bytes:
    return (
        '{"id": "chatcmpl-stub",  "object":"chat.completion.chunk","created":1700000000,"model":"stub-model",'
        f'"choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}]{extra}}}'
    ).encode()


SSE_CONTENT = [
    b"data: " + _chunk('{"role":"assistant","content":""}') + b"\n\n",
    b"data: " + _chunk('{"content":"Hel"}', extra=',"x_stub_field":{"kept":true}') + b"\n\n",
    b"data: " + _chunk('{"content":"lo \\u2713"}') + b"\n\n",
]
SSE_END = [
    b"data: " + _chunk("{}", finish='"stop"') + b"\n\n",
    b"data: [DONE]\n\n",
]
SSE_CHUNKS = SSE_CONTENT + SSE_END
"""The exact bytes of a default chat stream, one element per write."""
SSE_USAGE = (
    b'data: {"id":"chatcmpl-stub","object":"chat.completion.chunk","created":1700000000,"model":"stub-model"'
    b',"choices":[]'
    b',"usage":{"prompt_tokens":3,"total_tokens":10,"completion_tokens":7}}\n\n'
)
"""The usage chunk a stream ends with (before [DONE]) when the request asks `stream_options.include_usage`."""
SSE_REASONING = [
    b"data: " + _chunk('{"role":"assistant","content":"","reasoning":"","reasoning_content":""}') + b"\n\n",
    b"data: " + _chunk('{"reasoning":"The user greets; ","reasoning_content":"The user greets; "}') + b"\n\n",
    b"data: " + _chunk('{"reasoning":"answer briefly.","reasoning_content":"answer briefly."}') + b"\n\n",
    b"data: " + _chunk('{"content":"Hi!"}') + b"\n\n",
    (
        b'data: {"id":"chatcmpl-stub","object":"chat.completion.chunk","created":1700000000,"model":"stub-model"'
        b',"choices":[{"index":0'
        b',"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function"'
        b',"function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}\n\n'
    ),
    (
        b'data: {"id":"chatcmpl-stub","object":"chat.completion.chunk","created":1700000000,"model":"stub-model"'
        b',"choices":[{"index":0,"delta":{"tool_calls":[{"index":0'
        b',"function":{"arguments":"{\\"city\\": \\"Paris\\"}"}}]}'
        b',"finish_reason":null}]}\n\n'
    ),
    b"data: " + _chunk("{}", finish='"tool_calls"') + b"\n\n",
    b"data: [DONE]\n\n",
]
"""A reasoning model's stream (vLLM's `reasoning` / `reasoning_content` deltas, then content and a tool call)."""
SSE_TEXT = "Hello \u2713"
SSE_GAP = 0.25
"""Seconds the stub waits between SSE chunks."""

AUDIO_CHUNKS = [b"ID3\x04\x00\x00" + bytes(range(256)), b"\xff\xfb\x90\x00" * 64, b"\r\n\x00tail"]
"""The exact bytes of /v1/audio/speech, written one element at a time."""
AUDIO_GAP = 0.05

VOICES = {"object": "list", "data": [{"id": "af_heart", "language": "en-us"}]}


@dataclass
class Seen:
    """One request as it reached the stub."""

    method: str
    path: str
    query: bytes
    headers: list[tuple[str, str]]
    body: bytes
    at: float = 0.0
    """time.monotonic() when the request's body had arrived."""

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)


class StubUpstream:
    """The stub's state (read by the tests from another thread) and its Litestar app."""

    def __init__(self, name: str = "stub") -> None:
        self.name = name
        """Sent back as the `x-upstream` header, so tests can tell several stubs apart."""
        self.seen: list[Seen] = []
        self.stream_finished = threading.Event()
        """Set when a chat stream wrote its last chunk."""
        self.stream_cut = threading.Event()
        """Set when a chat stream was stopped before its last chunk (the reader went away)."""
        self.request_cut = threading.Event()
        """Set when a request held with `"hold": s` saw its client go away before answering."""
        self.script: list[str] | None = None
        """When set, chat streams send these content deltas instead (SSE_GAP apart); a request with
        vLLM's `continue_final_message` gets what follows its last (assistant) message's text."""
        self.calls: list[tuple[str, str]] | None = None
        """When set, a chat stream whose request carries `tools` streams these (name, arguments) tool calls,
        as vLLM does: the name in one delta, the arguments in two pieces, finish_reason "tool_calls"."""
        self.transcription_s = 0.0
        """Seconds a transcription or translation takes before it answers."""
        self.app = self._build()

    def reset(self) -> None:
        self.script = None
        self.calls = None
        self.transcription_s = 0.0
        self.seen.clear()
        self.stream_finished.clear()
        self.stream_cut.clear()
        self.request_cut.clear()

    async def _record(self, request: Request) -> Seen:
        seen = Seen(
            method=request.method,
            path=request.scope["path"],
            query=request.scope.get("query_string", b""),
            headers=[(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.scope["headers"]],
            body=await request.body(),
        )
        seen.at = time.monotonic()
        self.seen.append(seen)
        return seen

    async def _sse(
        self, repeat: int, usage: bool = False, reasoning: bool = False, die_after: int | None = None
    ) -> AsyncIterator[bytes]:
        chunks = SSE_CONTENT[:1] + SSE_CONTENT[1:] * repeat + SSE_END
        if usage:
            chunks = [*chunks[:-1], SSE_USAGE, *chunks[-1:]]
        if reasoning:
            chunks = SSE_REASONING
        done = False
        try:
            for i, chunk in enumerate(chunks):
                if i == die_after:  # the server dies mid-stream: uvicorn drops the connection
                    raise RuntimeError("stub dies mid-stream")
                if i:
                    await asyncio.sleep(SSE_GAP)
                yield chunk
            done = True
            self.stream_finished.set()
        finally:
            if not done:
                self.stream_cut.set()

    async def _scripted(self, payload: dict) -> AsyncIterator[bytes]:
        deltas = list(self.script or [])
        if payload.get("continue_final_message"):
            whole, prefix = "".join(deltas), payload["messages"][-1]["content"]
            deltas = [whole[len(prefix) :]] if whole.startswith(prefix) and len(whole) > len(prefix) else []
        chunks = [_chunk(json.dumps({"content": d})) for d in deltas] + [_chunk("{}", finish='"stop"')]
        done = False
        try:
            for chunk in chunks:
                await asyncio.sleep(SSE_GAP)
                yield b"data: " + chunk + b"\n\n"
            yield b"data: [DONE]\n\n"
            done = True
            self.stream_finished.set()
        finally:
            if not done:
                self.stream_cut.set()

    async def _tool_calls(self) -> AsyncIterator[bytes]:
        chunks = [_chunk('{"role":"assistant","content":""}')]
        for index, (name, arguments) in enumerate(self.calls or []):
            head = {"index": index, "id": f"chatcmpl-tool-{index}", "type": "function", "function": {"name": name}}
            chunks.append(_chunk(json.dumps({"tool_calls": [head]})))
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                chunks.append(_chunk(json.dumps({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})))
        chunks.append(_chunk("{}", finish='"tool_calls"'))
        for chunk in chunks:
            await asyncio.sleep(0.01)
            yield b"data: " + chunk + b"\n\n"
        yield b"data: [DONE]\n\n"
        self.stream_finished.set()

    @staticmethod
    async def _audio() -> AsyncIterator[bytes]:
        for i, chunk in enumerate(AUDIO_CHUNKS):
            if i:
                await asyncio.sleep(AUDIO_GAP)
            yield chunk

    def _build(self) -> Litestar:
        stub = self

        @get("/health")
        async def health() -> Response:
            return Response({"status": "ok"})

        @get("/v1/models")
        async def models(request: Request) -> Response:
            await stub._record(request)
            return Response(MODELS)

        @get("/v1/models/{model_id:path}")
        async def model(request: Request, model_id: FromPath[str]) -> Response:
            await stub._record(request)
            return Response({"id": model_id.lstrip("/"), "object": "model", "owned_by": "stub"})

        @post("/v1/chat/completions", status_code=200)
        async def chat(request: Request) -> Response | Stream:
            seen = await stub._record(request)
            payload = json.loads(seen.body)
            control = payload.get("stub") or {}
            await asyncio.sleep(control.get("sleep", 0))
            if "hold" in control:  # like sleep, but notices the client leaving (as vLLM does)
                try:
                    message = await asyncio.wait_for(request.receive(), control["hold"])
                    if message["type"] == "http.disconnect":
                        stub.request_cut.set()
                        return Response(b"", status_code=499)
                except TimeoutError:
                    pass
            if "status" in control:
                body = {
                    "error": {"message": "stub says no", "type": "invalid_request_error", "param": None, "code": "stub"}
                }
                return Response(body, status_code=control["status"])
            if payload.get("stream") and stub.calls is not None and payload.get("tools"):
                return Stream(
                    stub._tool_calls(), media_type="text/event-stream", headers={"content-type": "text/event-stream"}
                )
            if payload.get("stream") and stub.script is not None:
                return Stream(
                    stub._scripted(payload),
                    media_type="text/event-stream",
                    headers={"content-type": "text/event-stream"},
                )
            if payload.get("stream"):
                usage = bool((payload.get("stream_options") or {}).get("include_usage"))
                return Stream(
                    stub._sse(
                        control.get("repeat", 1), usage, bool(control.get("reasoning")), control.get("die_after")
                    ),
                    media_type="text/event-stream",
                    # Exactly this content-type (Litestar would add "; charset=utf-8" to a media_type).
                    headers={
                        "content-type": "text/event-stream",
                        "x-stub": "sse",
                        "cache-control": "no-cache",
                        "x-upstream": stub.name,
                    },
                )
            headers = {"x-stub": "chat", "x-upstream": stub.name}
            if "set_cookie" in control:
                headers["set-cookie"] = control["set_cookie"]
            return Response(CHAT_COMPLETION, media_type="application/json", headers=headers)

        @post("/v1/completions", status_code=200)
        async def completions(request: Request) -> Response:
            seen = await stub._record(request)
            return Response({"object": "text_completion", "echo": json.loads(seen.body)}, status_code=200)

        async def _upload(request: Request) -> Response:
            seen = await stub._record(request)
            await asyncio.sleep(stub.transcription_s)
            if b'name="stream"\r\n\r\ntrue' in seen.body:  # OpenAI's transcript events, two deltas
                events = [
                    {"type": "transcript.text.delta", "delta": f"{len(seen.body)}"},
                    {"type": "transcript.text.delta", "delta": " bytes"},
                    {"type": "transcript.text.done", "text": f"{len(seen.body)} bytes"},
                ]
                sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events)
                return Response(sse, media_type="text/event-stream", status_code=200)
            return Response(
                {
                    "text": f"{len(seen.body)} bytes",
                    "content_type": seen.header("content-type"),
                    "sha256": hashlib.sha256(seen.body).hexdigest(),
                },
                status_code=200,
            )

        @post("/v1/audio/transcriptions", status_code=200)
        async def transcriptions(request: Request) -> Response:
            return await _upload(request)

        @post("/v1/audio/translations", status_code=200)
        async def translations(request: Request) -> Response:
            return await _upload(request)

        @post("/v1/audio/speech", status_code=200)
        async def speech(request: Request) -> Stream:
            await stub._record(request)
            return Stream(stub._audio(), media_type="audio/mpeg", status_code=200)

        @get("/v1/audio/voices")
        async def voices(request: Request) -> Response:
            await stub._record(request)
            return Response(VOICES)

        return Litestar(
            [health, models, model, chat, completions, transcriptions, translations, speech, voices],
            openapi_config=None,
        )
