"""What the gateway reads from bodies it relays untouched: the request's top-level `model` and the
answer's `usage`, whatever the JSON around them."""

from __future__ import annotations

import pytest

from gateway.bodies import json_fields
from gateway.usage import UsageScanner


@pytest.mark.parametrize(
    ("body", "model"),
    [
        (b'{"messages": [{"role": "user", "model": "inner"}], "model": "qwen", "tools": [{"model": "x"}]}', "qwen"),
        (b'{"messages": [{"model": "inner"}]}', None),  # only the top level counts
        (b'{"model": null}', None),
        (b'{"mod\\u0065l": "qwen"}', "qwen"),  # an escaped key is the same key, as for Python's json
        (b'{"model": "a", "model": "qwen"}', "qwen"),  # the last of repeated keys, as for Python's json
    ],
)
def test_json_model_reads_only_a_top_level_string(body: bytes, model: str | None) -> None:
    assert json_fields(body, max_depth=64).model == model


def test_usage_from_a_json_answer_in_pieces() -> None:
    answer = (
        b'{"id": "c", "choices": [{"message": {"content": "usage"}}]'
        b', "usage": {"prompt_tokens": 3, "completion_tokens": 7}}'
    )
    scanner = UsageScanner(sse=False)
    for i in range(0, len(answer), 10):
        scanner.feed(answer[i : i + 10])
    assert scanner.finish() == {"prompt_tokens": 3, "completion_tokens": 7}


@pytest.mark.parametrize("answer", [b'{"usage": null}', b'{"usage": 3}', b'{"choices": []}', b"not json"])
def test_no_usage_when_the_answer_has_none(answer: bytes) -> None:
    scanner = UsageScanner(sse=False)
    scanner.feed(answer)
    assert scanner.finish() is None


def test_usage_from_an_sse_chunk_split_across_reads() -> None:
    events = (
        b'data: {"choices": [{"delta": {"content": "hi"}}], "usage": null}\n\n'
        b'data: {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 1}}\n\n'
        b"data: [DONE]\n\n"
    )
    scanner = UsageScanner(sse=True)
    cut = events.index(b"prompt_tokens")
    scanner.feed(events[:cut])
    scanner.feed(events[cut:])
    assert scanner.finish() == {"prompt_tokens": 2, "completion_tokens": 1}
