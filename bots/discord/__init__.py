"""Discord bot (nextcord): a later issue; it will reuse bots.pipeline like the Telegram bot."""
