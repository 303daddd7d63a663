"""The gateway's configuration: one pydantic-settings class, read from JUNE_GATEWAY_* variables."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.live_signal import MAX_AHEAD_S, LiveSignalPath


def _split_list(value: Any) -> Any:
    # From the environment the value is a raw string: "a,b", '["a","b"]' or "" (none).
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class RealtimeSettings(BaseSettings):
    """/v1/realtime: bounds of every session, the transcription model for spoken turns, LLM/TTS turn-taking."""

    model_config = SettingsConfigDict(env_prefix="JUNE_GATEWAY_REALTIME_", extra="ignore")

    max_event_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    """Largest /v1/realtime client event (bytes); larger → an `error` event (the socket stays open)."""
    max_buffer_s: float = Field(60.0, gt=0)
    """Longest input audio buffer (s): a longer spoken turn is cut and answered; manual mode refuses more."""
    max_session_s: float = Field(1800.0, gt=0)
    """Longest /v1/realtime session (s); then `error` session_expired and close (OpenAI allows 60 min)."""
    max_sessions: int | None = Field(None, ge=1)
    """Realtime sessions (conversations and transcription sessions) open at once on this gateway; one
    more is refused with an `error` event (code too_many_sessions, saying when to retry) and close
    1013. None: `session_limit`'s default for this machine's cores."""
    max_turns: int = Field(8, ge=1)
    """User/assistant turns a realtime session remembers; once passed, the oldest go down to half
    (core.history), like the bots' history."""
    max_history_tokens: int = Field(2000, ge=100)
    """Tokens (the served model's tokenizer, via /tokenize) a realtime session's conversation may hold."""
    transcription_model: str = "tiny.en"
    """Speech service model for spoken turns unless the session picks one: "tiny.en" (English only,
    about 3x faster than "base", the biggest cut in time to the first reply audio on a CPU) or
    "whisper-1" (the speech service's default, multilingual). A session whose transcription
    language is not English gets "whisper-1" instead of an English-only model."""

    busy_retry_s: int = Field(30, ge=1)
    """Seconds a client refused for too many sessions is told to wait before it tries again."""
    playback_lead_s: float = Field(1.0, ge=0)
    """While a spoken reply is still being written and its audio is less than this many seconds ahead of
    the client's playback (real time from its first audio), the turn holds other work back again, as
    before its first audio (gateway.admission: vLLM's and the speech service's other work pause), until
    the audio is twice as far ahead; at most the gateway's `live_hold_s` per reply in all. Without it,
    the speech service's background work at a small nice slowed the rest of a busy reply into gaps
    (1.3 s of silence in one turn of `june bench realtime --busy`). 0: the hold ends at the first audio."""

    @property
    def session_limit(self) -> int:
        """`max_sessions`, or one live session per 2 CPU cores, at least 2: on the 2-core CPU defaults
        one spoken turn takes both cores for about a second, so two talking sessions already overlap
        some turns; a GPU host (more cores, the models off the CPU) serves more."""
        return self.max_sessions or max(2, (os.cpu_count() or 2) // 2)

    llm_pauses_for_tts: bool = True
    """The LLM and TTS take turns on the CPU instead of sharing it: the reply's LLM stream is closed
    once a piece (a sentence, or one of the first two clauses or phrases) is complete, which stops it in vLLM;
    the speech service synthesizes that piece with every core (`service_tier` "priority"); then the
    LLM goes on from the text so far (vLLM's `continue_final_message`, prefix-cached, ~0.1 s). On a
    CPU box that brings the first audio sooner and keeps the audio ahead of playback. Turn it off
    when the LLM has a GPU of its own, or is not vLLM."""
    auto_tool_calls: bool = False
    """The served model calls tools under `tool_choice: "auto"` (its vLLM tool parser fires). Off (the CPU
    model, Qwen2.5-Coder-0.5B with hermes, writes the call as JSON text instead): a response whose choice
    is `auto` is sent no tools, and sessions call tools with `required` or a named function. Turn it on
    for a model that calls under auto (e.g. a GPU preset with Qwen3 and its parser)."""
    tool_history: Literal["native", "text"] = "text"
    """How function calls and their outputs reach the model: "native" (assistant `tool_calls` and `tool`
    messages, for a model trained on tool use) or "text" (each output as a short user note asking for a
    spoken answer: the CPU model answers from it 17 times in 18, from `tool` messages 0 in 18;
    docs/realtime-protocol.md)."""


class GatewaySettings(BaseSettings):
    """Where the gateway listens, which upstreams it fronts, who may call it, how much, how long it waits.

    Upstream URLs are base URLs without `/v1`: the gateway forwards `/v1/...` paths unchanged.
    """

    model_config = SettingsConfigDict(env_prefix="JUNE_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    """Interface to bind (JUNE_GATEWAY_HOST); 0.0.0.0 to accept outside connections."""
    port: int = 8000
    """TCP port to listen on (JUNE_GATEWAY_PORT)."""
    llm_url: str = "http://127.0.0.1:8002"
    """Base URL of the OpenAI-compatible LLM server, e.g. vLLM (JUNE_GATEWAY_LLM_URL); ignored when llm_urls is set."""
    llm_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Several LLM servers serving the same models (JUNE_GATEWAY_LLM_URLS, comma-separated): least-busy routing."""
    speech_url: str = "http://127.0.0.1:8001"
    """Base URL of june's speech service (JUNE_GATEWAY_SPEECH_URL)."""
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Accepted bearer keys (JUNE_GATEWAY_API_KEYS, comma-separated or a JSON list); no keys at all = open."""
    api_keys_file: Path | None = None
    """File of keys, one per line: `KEY` or `KEY model1,model2` (allow-list); `#` starts a comment."""
    metrics_key: SecretStr | None = None
    """When set, GET /metrics wants `Authorization: Bearer <this>`; unset = open (scrapers inside the network)."""
    requests_per_minute: int | None = Field(None, ge=1)
    """POST requests (completions, audio) each key may start per window; None = unlimited."""
    completion_tokens_per_minute: int | None = Field(None, ge=1)
    """Completion tokens each key may use per window, counted from upstream `usage`; None = unlimited."""
    concurrent_requests: int | None = Field(None, ge=1)
    """Requests each key may have in flight at once; None = unlimited."""
    limit_window_s: float = Field(60.0, gt=0)
    """Length of the rate-limit window in seconds (a minute; shorter in tests)."""
    limits_backend: Literal["memory", "redis"] = "memory"
    """Where counters live: "memory" (one replica) or "redis" (shared by several replicas; needs redis_url)."""
    redis_url: str | None = None
    """redis://host:port/db for the redis limits backend."""
    health_interval_s: float = Field(5.0, gt=0)
    """Seconds between background health checks of each upstream (GET /health)."""
    connect_timeout: float = 5.0
    """Seconds to wait for a TCP connection to an upstream before answering 504."""
    read_timeout: float = 600.0
    """Seconds to wait for each piece of an upstream response (long generations) before 504."""
    access_log: bool = False
    """Log one line per request (off: the gateway's metrics and traces already record every request)."""
    max_body_bytes: int = 32 * 1024 * 1024
    """Largest request body accepted (bytes); OpenAI's audio uploads go up to 25 MB. Larger → 413."""
    max_json_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    """Largest JSON body (chat, completions, speech) accepted (bytes); larger → 413. The gateway parses
    a JSON body whole to check it, which briefly takes up to ~25x its size in memory."""
    max_json_depth: int = Field(64, ge=2, le=500)
    """Deepest nesting of arrays and objects accepted in a JSON body; deeper → 400 (upstreams that
    parse JSON recursively fail with a 500 near 1000)."""

    live_hold_s: float = Field(5.0, ge=0)
    """Seconds an interactive or batch request may wait to start while a live turn (/v1/realtime) waits
    for its answer (its transcription, from the pause where the turn may end, and its response until
    the first audio), so it does not take the cores the live turn needs; then it goes anyway. 0: never
    wait (e.g. every stage has a GPU of its own). See gateway.admission."""
    live_signal: LiveSignalPath = None
    """The live window file (core.live_signal) the gateway writes while a live turn waits for its answer
    (its transcription, then its response until the first audio), so june's vLLM and speech service on
    the same host pause lower-class work for it, and at a second level while interactive requests are
    in flight (`interactive_hold_s`) (JUNE_LLM_LIVE_SIGNAL and JUNE_SPEECH_LIVE_SIGNAL name the same
    file). `june up` sets all three; None or "": not written."""
    interactive_hold_s: float = Field(30.0, ge=0, le=MAX_AHEAD_S)
    """With `live_signal`: how long one interactive request (a bot's, or an API call without a class)
    in flight keeps june's vLLM on this host from giving batch generations more than a small share of
    its steps (seconds from its arrival; a later request starts its own). 0: batch is never slowed for
    interactive work. See gateway.admission and june.llm.live_scheduler."""
    batch_concurrency: int = Field(1, ge=1)
    """Batch requests (X-June-Class: batch, service_tier flex, or a batch key) in flight at once; more wait."""
    batch_queue: int = Field(64, ge=0)
    """Batch requests that may wait for a place; beyond → 503 server_busy with Retry-After."""
    llm_priority: bool = True
    """Send each chat/completions request's class to the LLM as vLLM's per-request `priority` (live 0,
    interactive 10, batch 20; lower first). june's vLLM runs `--scheduling-policy priority`; turn this
    off for an LLM server that does not (vLLM with the default fcfs policy refuses a priority but 0)."""

    realtime: RealtimeSettings = Field(default_factory=RealtimeSettings)
    """/v1/realtime's bounds and turn-taking: `RealtimeSettings`, read from JUNE_GATEWAY_REALTIME_*."""

    @field_validator("api_keys", "llm_urls", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _split_list(value)

    @model_validator(mode="after")
    def _redis_needs_url(self) -> GatewaySettings:
        if self.limits_backend == "redis" and not self.redis_url:
            raise ValueError("limits_backend=redis needs redis_url (JUNE_GATEWAY_REDIS_URL)")
        return self

    def llm_upstreams(self) -> list[str]:
        """The LLM base URLs: llm_urls when given, else [llm_url]."""
        return list(self.llm_urls) or [self.llm_url]
