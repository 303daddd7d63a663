"""Who may talk to the bots: the allow-list (the per-user rate limit is core.limits: tests/test_limits.py,
and shared by two bot replicas: tests/bots/test_telegram.py)."""

from __future__ import annotations

from bots.guard import AllowList


def test_allow_list_takes_users_or_chats_and_empty_allows_all():
    assert AllowList().allows(1, "chat")
    only = AllowList([42, "7"])
    assert only.allows(1, 42) and only.allows("7") and not only.allows(1, 2)
