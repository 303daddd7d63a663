"""Settings for the bots, read from the environment: one class per concern.

`BotSettings` (``JUNE_BOT_*``) configures the shared pipeline (where the gateway is, voice, prompt,
memory); `TelegramSettings` (``JUNE_TELEGRAM_*``) the Telegram connection.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

import httpx

from bots.pipeline import DEFAULT_SYSTEM_PROMPT, VoicePipeline


class BotSettings(BaseSettings):
    """The pipeline every bot uses: gateway URL, models, voice, prompt, history and timeouts."""

    model_config = SettingsConfigDict(env_prefix="JUNE_BOT_", extra="ignore")

    base_url: str = "http://127.0.0.1:8000"
    """The gateway's base URL (OpenAI paths under /v1)."""
    api_key: SecretStr | None = None
    """Bearer key for the gateway, when it requires one."""
    chat_model: str | None = None
    """Chat model id; unset means the first model the gateway lists."""
    transcription_model: str = "whisper-1"
    """`model` field sent to /v1/audio/transcriptions."""
    speech_model: str = "tts-1"
    """`model` field sent to /v1/audio/speech."""
    voice: str | None = None
    """Voice for /v1/audio/speech (a Kokoro voice or an OpenAI name); unset: the speech service's default."""
    language: str | None = None
    """Language hint for transcription (ISO 639-1, e.g. "en"); unset: detected per message."""
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    """System message at the start of every conversation."""
    history_turns: int = Field(default=8, ge=0)
    """User/assistant exchanges remembered per chat (0 forgets everything)."""
    max_reply_tokens: int | None = Field(default=300, ge=1)
    """`max_tokens` for chat completions; unset lets the model decide."""
    request_timeout: float = Field(default=120.0, gt=0)
    """Seconds before one gateway request is given up (transcription, chat or speech)."""


class TelegramSettings(BaseSettings):
    """The Telegram connection: token, optional self-hosted Bot API server, long polling."""

    model_config = SettingsConfigDict(env_prefix="JUNE_TELEGRAM_", extra="ignore")

    token: SecretStr
    """Bot token from @BotFather (``123456:ABC...``)."""
    api_server: str | None = None
    """Base URL of a self-hosted Bot API server (e.g. http://127.0.0.1:8081); unset means api.telegram.org."""
    api_server_local: bool = False
    """The Bot API server runs with --local: file paths it returns are read from this machine's disk."""
    polling_timeout: int = Field(default=30, ge=0)
    """Seconds each getUpdates long poll may wait for updates."""
    drop_pending_updates: bool = False
    """Discard updates that queued up while the bot was down, at start."""


def create_pipeline(settings: BotSettings, http: httpx.AsyncClient) -> VoicePipeline:
    """The shared voice pipeline configured from `settings`, over the caller's `http` client."""
    return VoicePipeline(
        http,
        base_url=settings.base_url,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        chat_model=settings.chat_model,
        transcription_model=settings.transcription_model,
        speech_model=settings.speech_model,
        voice=settings.voice,
        language=settings.language,
        system_prompt=settings.system_prompt,
        max_history_turns=settings.history_turns,
        max_reply_tokens=settings.max_reply_tokens,
    )
