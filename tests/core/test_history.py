"""core.history: bounds hold, and the kept history's beginning changes only at a trim (prefix cache)."""

from __future__ import annotations

import itertools

from core.history import oldest_to_drop


def test_nothing_goes_while_both_bounds_hold() -> None:
    assert oldest_to_drop([5] * 16, 16, 80) == 0
    assert oldest_to_drop([], 0, None) == 0


def test_past_a_bound_the_rest_is_cut_to_half_of_each() -> None:
    assert oldest_to_drop([5] * 17, 16, None) == 9  # 8 left
    assert oldest_to_drop([5] * 10, 16, 40) == 6  # 50 > 40 tokens: 20 left
    assert oldest_to_drop([30, 1, 1, 30], 16, 40) == 3  # only the newest is within 20
    assert oldest_to_drop([5] * 3, 0, None) == 3


def test_the_newest_item_stays_when_it_alone_fits_or_is_kept_by_the_caller() -> None:
    assert oldest_to_drop([15, 30], 16, 40) == 1  # the newest is over half (20) but within the bound (40)
    assert oldest_to_drop([1, 50], 16, 40) == 2  # the newest alone is past the bound
    assert oldest_to_drop([1, 50], 16, 40, keep_last=1) == 1


def test_a_growing_history_keeps_its_beginning_between_trims() -> None:
    history: list[int] = []
    starts, next_item = [], 0
    for _ in range(100):
        history.append(next_item)
        next_item += 1
        del history[: oldest_to_drop([10] * len(history), 16, 1000)]
        assert len(history) <= 16
        starts.append(history[0])
    changes = sum(1 for a, b in itertools.pairwise(starts) if a != b)
    assert changes <= 100 // 8  # one trim per 8-9 turns; sliding one at a time changes it 84 times
    assert min(len(set(starts[i : i + 8])) for i in range(20, 90)) <= 2
