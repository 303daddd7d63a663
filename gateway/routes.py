"""The gateway's routes: OpenAI's paths, each forwarded to the upstream that serves it.

Handlers take the raw request and hand it to `proxy.forward`; bodies are never parsed here, so
fields the gateway does not know reach the upstream untouched.
"""

from __future__ import annotations

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Stream

from gateway.proxy import forward


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    """Liveness of the gateway itself (upstreams not probed); never needs a key."""
    return {"status": "ok"}


# --- LLM (vLLM's OpenAI server) ---


@post("/chat/completions")
async def chat_completions(request: Request) -> Stream:
    return await forward(request, "llm")


@post("/completions")
async def completions(request: Request) -> Stream:
    return await forward(request, "llm")


@get("/models")
async def list_models(request: Request) -> Stream:
    return await forward(request, "llm")


@get("/models/{model_id:path}")
async def retrieve_model(request: Request, model_id: FromPath[str]) -> Stream:  # noqa: ARG001 - forwarded in the path
    return await forward(request, "llm")


# --- speech (june's speech service) ---


@post("/audio/transcriptions")
async def transcriptions(request: Request) -> Stream:
    return await forward(request, "speech")


@post("/audio/translations")
async def translations(request: Request) -> Stream:
    return await forward(request, "speech")


@post("/audio/speech")
async def speech(request: Request) -> Stream:
    return await forward(request, "speech")


@get("/audio/voices")
async def voices(request: Request) -> Stream:
    return await forward(request, "speech")


v1_handlers = [
    chat_completions,
    completions,
    list_models,
    retrieve_model,
    transcriptions,
    translations,
    speech,
    voices,
]
"""Handlers mounted under /v1 (behind the key guard when keys are set)."""
