"""The gateway's configuration: one pydantic-settings class, read from JUNE_GATEWAY_* variables."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class GatewaySettings(BaseSettings):
    """Where the gateway listens, which upstreams it fronts, who may call it and how long it waits.

    Upstream URLs are base URLs without `/v1`: the gateway forwards `/v1/...` paths unchanged.
    """

    model_config = SettingsConfigDict(env_prefix="JUNE_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    """Interface to bind (JUNE_GATEWAY_HOST); 0.0.0.0 to accept outside connections."""
    port: int = 8000
    """TCP port to listen on (JUNE_GATEWAY_PORT)."""
    llm_url: str = "http://127.0.0.1:8002"
    """Base URL of the OpenAI-compatible LLM server, e.g. vLLM (JUNE_GATEWAY_LLM_URL)."""
    speech_url: str = "http://127.0.0.1:8001"
    """Base URL of june's speech service (JUNE_GATEWAY_SPEECH_URL)."""
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Accepted bearer keys (JUNE_GATEWAY_API_KEYS, comma-separated or a JSON list); empty = open."""
    connect_timeout: float = 5.0
    """Seconds to wait for a TCP connection to an upstream before answering 504."""
    read_timeout: float = 600.0
    """Seconds to wait for each piece of an upstream response (long generations) before 504."""
    write_timeout: float = 60.0
    """Seconds to wait for each piece of a request body to be accepted by an upstream."""
    max_body_bytes: int = 32 * 1024 * 1024
    """Largest request body accepted (bytes); OpenAI's audio uploads go up to 25 MB. Larger → 413."""

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        # From the environment the value is a raw string: "k1,k2", '["k1","k2"]' or "" (no keys).
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value
