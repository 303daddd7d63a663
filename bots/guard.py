"""Who may talk to a bot: an optional allow-list (how often: core.limits, per user, see bots.settings)."""

from __future__ import annotations

from collections.abc import Iterable


class AllowList:
    """Ids (users or chats, as strings) that may use the bot; an empty list allows everyone."""

    def __init__(self, ids: Iterable[str | int] = ()) -> None:
        self.ids = frozenset(str(i) for i in ids)

    def allows(self, *ids: str | int) -> bool:
        """True when the list is empty or any of `ids` (e.g. user and chat) is on it."""
        return not self.ids or any(str(i) in self.ids for i in ids)
