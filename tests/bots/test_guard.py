"""Who may talk to the bots: the per-user sliding-window limit and the allow-list."""

from __future__ import annotations

from bots.guard import AllowList, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_per_user_and_recovery_as_the_window_slides():
    clock = Clock()
    limiter = RateLimiter(2, 60, clock=clock)
    assert limiter.allow("a") and limiter.allow("a")
    assert not limiter.allow("a")  # a third within the window
    assert limiter.allow("b")  # per user
    clock.now += 30
    assert not limiter.allow("a")  # refused messages do not count, but the first two still do
    clock.now += 30.5
    assert limiter.allow("a") and limiter.allow("a")  # both slid out of the window
    assert not limiter.allow("a")
    assert RateLimiter(0, 60, clock=clock).allow("a")  # 0: unlimited


def test_idle_users_are_forgotten_and_active_ones_kept():
    clock = Clock()
    limiter = RateLimiter(1, 10, clock=clock)
    for i in range(1000):
        assert limiter.allow(f"idle-{i}")
    clock.now += 5
    assert limiter.allow("active")
    assert not limiter.allow("idle-0")  # still within its window
    clock.now += 5.5
    assert not limiter.allow("active")  # the idle ones expired meanwhile, this one has not
    assert list(limiter._seen) == ["active"]  # memory stays bounded by the users active in a window
    clock.now += 5
    assert limiter.allow("active") and list(limiter._seen) == ["active"]


def test_allow_list_takes_users_or_chats_and_empty_allows_all():
    assert AllowList().allows(1, "chat")
    only = AllowList([42, "7"])
    assert only.allows(1, 42) and only.allows("7") and not only.allows(1, 2)
