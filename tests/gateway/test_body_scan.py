"""What the gateway reads from bodies it relays untouched: the request's top-level `model` and the
answer's `usage`, whatever the JSON around them."""

from __future__ import annotations

import pytest

from gateway.proxy import UsageScanner, sniff_model


@pytest.mark.parametrize(
    ("body", "model"),
    [
        (b'{"messages": [{"role": "user", "model": "inner"}], "model": "qwen", "tools": [{"model": "x"}]}', "qwen"),
        (b'{"messages": [{"model": "inner"}]}', None),  # only the top level counts
        (b'{"model": 5}', None),
        (b'{"model": null}', None),
        (b'["model", "qwen"]', None),
        (b'{"model": "qwen"', None),  # truncated: the upstream's to reject
        (b"", None),
    ],
)
def test_sniff_model_reads_only_a_top_level_string(body: bytes, model: str | None) -> None:
    assert sniff_model(body) == model


def test_usage_from_a_json_answer_in_pieces() -> None:
    answer = b'{"id": "c", "choices": [{"message": {"content": "usage"}}], "usage": {"prompt_tokens": 3, "completion_tokens": 7}}'
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
