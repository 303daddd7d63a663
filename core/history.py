"""How much of a conversation's past goes into the next chat request: the bots' history and the
realtime session's conversation share this rule.

Trimmed in steps, not one turn at a time. vLLM's prefix cache (`--enable-prefix-caching`) reuses
the KV of a prompt's unchanged beginning, so a history that keeps its oldest part fixed costs only
the new turn's prefill. Sliding the window by one turn changes the beginning of every request, and
the whole history is prefilled again each turn: on the 0.5B CPU default the time to the first
token grew from ~0.2 s to ~0.9 s by the tenth realtime turn (`june bench realtime`). So when a
bound is passed, the oldest items go until the rest is within half of each bound; the following
requests then share their beginning until a bound is passed again.
"""

from __future__ import annotations

from collections.abc import Sequence


def oldest_to_drop(sizes: Sequence[int], max_items: int, max_tokens: int | None, *, keep_last: int = 0) -> int:
    """How many of the oldest items to drop from a history of items with `sizes` (tokens each,
    oldest first) so that it fits `max_items` items and `max_tokens` tokens (None: no token bound).

    0 while both bounds hold; once one is passed, enough to bring the rest within half of each
    (the newest item stays when it alone is within both bounds). The newest `keep_last` items are
    never dropped, even when they alone pass a bound.
    """
    n = len(sizes)
    if n <= max_items and (max_tokens is None or sum(sizes) <= max_tokens):
        return 0
    low_items = max(1, max_items // 2) if max_items > 0 else 0
    drop = max(0, n - low_items)
    if max_tokens is not None:
        low_tokens = max_tokens // 2
        total = sum(sizes[drop:])
        while drop < n and total > low_tokens and not (drop == n - 1 and total <= max_tokens):  # the newest alone fits
            total -= sizes[drop]
            drop += 1
    return min(drop, max(0, n - keep_last))
