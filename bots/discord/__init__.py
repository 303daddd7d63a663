"""Discord bot (nextcord): `python -m bots.discord`."""
