"""Bot settings come from JUNE_BOT_* / JUNE_TELEGRAM_* and keep secrets out of reprs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bots.settings import BotSettings, DiscordSettings, TelegramSettings


def test_settings_read_their_prefixed_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("JUNE_BOT_BASE_URL", "http://gateway:8000")
    monkeypatch.setenv("JUNE_BOT_API_KEY", "sk-secret")
    monkeypatch.setenv("JUNE_BOT_HISTORY_TURNS", "3")
    monkeypatch.setenv("JUNE_TELEGRAM_TOKEN", "123:secret-token")
    monkeypatch.setenv("JUNE_TELEGRAM_API_SERVER", "http://127.0.0.1:8081")

    bot, telegram = BotSettings(), TelegramSettings()  # type: ignore[call-arg]

    assert bot.base_url == "http://gateway:8000" and bot.history_turns == 3
    assert bot.api_key is not None and bot.api_key.get_secret_value() == "sk-secret"
    assert telegram.token.get_secret_value() == "123:secret-token"
    assert telegram.api_server == "http://127.0.0.1:8081"
    assert "sk-secret" not in repr(bot) and "secret-token" not in repr(telegram)


def test_defaults_and_required_token(monkeypatch: pytest.MonkeyPatch):
    for name in ("JUNE_BOT_BASE_URL", "JUNE_BOT_API_KEY", "JUNE_TELEGRAM_TOKEN", "JUNE_TELEGRAM_API_SERVER"):
        monkeypatch.delenv(name, raising=False)
    bot = BotSettings()
    assert bot.base_url == "http://127.0.0.1:8000" and bot.api_key is None and bot.voice is None
    with pytest.raises(ValidationError):
        TelegramSettings()  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        BotSettings(history_turns=-1)


def test_discord_settings_and_lists_from_json(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("JUNE_DISCORD_TOKEN", "discord-secret")
    monkeypatch.setenv("JUNE_DISCORD_CHANNELS", "[123, 456]")
    monkeypatch.setenv("JUNE_BOT_ALLOWED_IDS", "[42]")
    monkeypatch.setenv("JUNE_BOT_REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("JUNE_TELEGRAM_TOKEN", "123:secret-token")
    monkeypatch.setenv("JUNE_TELEGRAM_WEBHOOK_SECRET", "hook-secret")

    discord, bot, telegram = DiscordSettings(), BotSettings(), TelegramSettings()  # type: ignore[call-arg]

    assert discord.channels == [123, 456] and discord.token.get_secret_value() == "discord-secret"
    assert bot.allowed_ids == [42] and bot.redis_url == "redis://127.0.0.1:6379/0"
    assert telegram.webhook_url is None  # polling unless a webhook URL is set
    assert "discord-secret" not in repr(discord) and "hook-secret" not in repr(telegram)
    with pytest.raises(ValidationError):
        BotSettings(reply_deadline=0)
