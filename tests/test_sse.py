"""core.sse: the one reader of ``data:`` lines (the gateway's usage scan, `june smoke`)."""

from __future__ import annotations

from core.sse import DONE, data_fields

STREAM = ': keep-alive\n\nevent: message\nid: 7\ndata: {"a": 1}\n\ndata:{"b": 2}  \nretry: 10\n\ndata: [DONE]\n\n'


def test_data_fields_of_text_and_bytes_skip_everything_else():
    assert list(data_fields(STREAM.splitlines())) == ['{"a": 1}', '{"b": 2}', DONE]
    assert list(data_fields(STREAM.encode().splitlines())) == [b'{"a": 1}', b'{"b": 2}', DONE.encode()]


def test_a_field_named_like_data_is_not_data():
    assert list(data_fields(["database: x", "dat: y", " data: z", ""])) == []
