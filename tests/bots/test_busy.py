"""Reading how long a busy upstream asks to wait (RFC 9110 §10.2.3: delta-seconds or an HTTP date)."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from core.busy import current_patience, patience, retry_after


def answered(value: str | None) -> httpx.Response:
    return httpx.Response(503, headers={} if value is None else {"Retry-After": value})


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 2 ", 2.0),
        ("0", 0.0),
        ("-5", 0.0),
        ("1.5", 1.5),
        (None, None),
        ("", None),
        ("soon", None),
        ("inf", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_retry_after_values(value, seconds):
    assert retry_after(answered(value)) == seconds


def test_retry_after_as_a_future_http_date():
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry_after(answered(later)) <= 31


def test_patience_is_scoped_and_nests():
    assert current_patience() is None
    with patience(10) as outer:
        assert current_patience() is outer and 9 < outer.left() <= 10
        with patience(1) as inner:
            assert current_patience() is inner
        assert current_patience() is outer
    assert current_patience() is None
