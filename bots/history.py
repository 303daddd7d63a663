"""Per-chat conversation memory for the bots: in process, bounded by turns, lost on restart."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Hashable

from bots.pipeline import Message


class ChatHistory:
    """The last `max_turns` user/assistant exchanges of each chat (a turn is one pair of messages).

    Keys are whatever identifies a conversation (a Telegram chat id, a Discord channel id).
    """

    def __init__(self, max_turns: int = 8) -> None:
        if max_turns < 0:
            raise ValueError(f"max_turns must be >= 0, got {max_turns}")
        self.max_turns = max_turns
        self._turns: defaultdict[Hashable, deque[tuple[Message, Message]]] = defaultdict(
            lambda: deque(maxlen=max_turns)
        )

    def messages(self, chat: Hashable) -> list[Message]:
        """The chat's remembered messages, oldest first, as a new list (``[user, assistant, user, ...]``)."""
        return [dict(m) for turn in self._turns.get(chat, ()) for m in turn]

    def add(self, chat: Hashable, user: str, assistant: str) -> None:
        """Remember one exchange; the oldest turn is forgotten beyond `max_turns`."""
        if self.max_turns == 0:
            return
        self._turns[chat].append(({"role": "user", "content": user}, {"role": "assistant", "content": assistant}))

    def clear(self, chat: Hashable) -> None:
        """Forget the chat's conversation."""
        self._turns.pop(chat, None)
