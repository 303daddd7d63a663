"""Telegram bot (aiogram 3): `python -m bots.telegram`."""
