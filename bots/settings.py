"""Settings for the bots, read from the environment: one class per concern.

`BotSettings` (``JUNE_BOT_*``) configures the shared pipeline and core (where the gateway is, voice,
prompt, memory, limits, deadline); `TelegramSettings` (``JUNE_TELEGRAM_*``) the Telegram connection;
`DiscordSettings` (``JUNE_DISCORD_*``) the Discord one. What is built from them is `bots.compose`.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.voice import DEFAULT_SYSTEM_PROMPT


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
    temperature: float | None = Field(default=None, ge=0, le=2)
    """Sampling temperature for chat completions; unset: the server's default."""
    request_timeout: float = Field(default=120.0, gt=0)
    """Seconds before one gateway request is given up (transcription, chat or speech)."""
    reply_deadline: float = Field(default=180.0, gt=0)
    """Seconds from a message's arrival to its reply; past it the user gets an apology instead."""
    retry_attempts: int = Field(default=3, ge=1)
    """Most tries of a call that failed and is safe to repeat (models list, transcription, synthesis);
    a busy gateway's Retry-After (429/503) is instead waited for within `reply_deadline`."""
    busy_notice_after: float = Field(default=10.0, ge=0)
    """Seconds of waiting for a busy gateway after which the user is told, once, that the answer is coming."""
    overlap: bool = True
    """Stream the reply and synthesise each sentence while the rest is generated (False: one after the other)."""
    history_tokens: int | None = Field(default=2000, ge=1)
    """Tokens of history sent per request, counted by the served model's tokenizer (the gateway's
    /tokenize; an estimate that never undercounts CJK when it cannot be asked); unset: bounded by turns only."""
    history_ttl: float | None = Field(default=3600.0, gt=0)
    """Seconds of silence after which a chat's history (and preferences) are forgotten; unset: never."""
    redis_url: str | None = None
    """Redis URL (``redis://host:6379/0``) for history and per-user rate limits shared by replicas;
    unset: in process memory."""
    rate_limit: int = Field(default=10, ge=0)
    """Messages per user per `rate_window` seconds, counted by every replica together when `redis_url`
    is set (0: unlimited)."""
    rate_window: float = Field(default=60.0, gt=0)
    """Window of the per-user rate limit, in seconds (fixed windows: at worst 2x the limit across a window's edge)."""
    allowed_ids: list[int] = []
    """User or chat ids allowed to talk to the bots (JSON list, e.g. ``[123, 456]``); empty: everyone."""


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
    webhook_url: str | None = None
    """Public HTTPS URL Telegram posts updates to (webhook mode); unset: long polling."""
    webhook_secret: SecretStr | None = None
    """Secret Telegram sends in X-Telegram-Bot-Api-Secret-Token; other requests are refused (401)."""
    webhook_path: str = "/telegram/webhook"
    """Path of the webhook handler on the bot's HTTP port."""
    host: str = "0.0.0.0"
    """Interface of the bot's HTTP port (/health, /metrics, and the webhook in webhook mode)."""
    port: int = Field(default=8081, ge=0, le=65535)
    """The bot's HTTP port (0: no HTTP server in polling mode)."""
    max_voice_seconds: int = Field(default=120, gt=0)
    """Longest voice/audio/video note answered; longer ones get a friendly refusal."""
    max_file_bytes: int = Field(default=20 * 2**20, gt=0)
    """Largest file downloaded (the public Bot API serves at most 20 MB)."""
    request_timeout: float = Field(default=60.0, gt=0)
    """Seconds one Bot API call or file download (an upload included) may take; a send that times
    out may still arrive, so it is neither repeated nor apologised for."""
    send_attempts: int = Field(default=5, ge=1)
    """Most tries of a Bot API call that failed with 429 (after its retry_after), 5xx or a refused connection."""
    send_max_wait: float = Field(default=60.0, ge=0)
    """Longest 429 retry_after (seconds) honoured; a longer flood wait gives the call up."""
    shutdown_grace: float = Field(default=25.0, ge=0)
    """Seconds the updates being answered get to finish on SIGTERM (keep it under the orchestrator's
    kill timeout: Kubernetes' default is 30 s); unfinished polled updates are delivered again at the next start."""


class DiscordSettings(BaseSettings):
    """The Discord connection: token, where the bot answers, limits, its HTTP port."""

    model_config = SettingsConfigDict(env_prefix="JUNE_DISCORD_", extra="ignore")

    token: SecretStr
    """Bot token from the Discord developer portal."""
    api_base: str = "https://discord.com/api/v10"
    """Discord REST base URL (voice-message uploads go here)."""
    channels: list[int] = []
    """Channel ids where the bot answers every message, not only mentions (JSON list)."""
    host: str = "0.0.0.0"
    """Interface of the bot's HTTP port (/health, /metrics)."""
    port: int = Field(default=8082, ge=0, le=65535)
    """The bot's HTTP port (0: none)."""
    max_voice_seconds: int = Field(default=120, gt=0)
    """Longest voice message answered; longer ones get a friendly refusal."""
    max_file_bytes: int = Field(default=20 * 2**20, gt=0)
    """Largest attachment downloaded."""
