"""What the gateway reads of request bodies before relaying them: the media type, a JSON body's
`model` and a multipart form's `model` field.

The gateway enforces per-key model allow-lists, so the model it checks must be the model the
upstream will serve. That only holds if the gateway reads the body the way the upstream will, or
refuses it: vLLM lower-cases the media type and parses JSON with Python's `json` module, which
takes NaN, 1e400 (as inf), lone surrogates and a UTF-16 body, and fails (a 500) on a 5000-digit
integer or 1000-deep nesting. So a JSON endpoint takes only `application/json` (any case, any
parameters; else 415), and its body is parsed whole and strictly here (msgspec: RFC 8259, UTF-8,
numbers in range) and refused with a 400 when it is not one JSON object of bounded size and
nesting. What passes is sent on as the same bytes.

A multipart upload streams through (up to 25 MB of audio); for a key with an allow-list its
`model` fields are read as they pass (`FormScan`, the `multipart` package Litestar itself parses
forms with), and the bytes that complete the form are held back until the model is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header

from core.web import OpenAIError

JSON = "application/json"
MULTIPART = "multipart/form-data"

_decode = msgspec.json.Decoder().decode
_MAX_FIELD_BYTES = 1024
"""Longest `model` form field read (model ids are short; speech's own names are a few bytes)."""
_MAX_FORM_PARTS = 1000
"""Parts per form, as Litestar (the speech service) allows."""


def media_type(value: str) -> tuple[str, dict[str, str]]:
    """A Content-Type header's media type, lower-cased, and its parameters (RFC 9110 §8.3.1).

    "Application/JSON ; charset=UTF-8" → ("application/json", {"charset": "UTF-8"}).
    """
    return parse_options_header(value)


def unsupported(got: str, want: str) -> OpenAIError:
    """The 415 for a body of the wrong media type."""
    shown = got or "none"
    return OpenAIError(
        415, f"Content-Type must be {want} on this endpoint (got {shown}).", code="unsupported_media_type"
    )


def _invalid(message: str) -> OpenAIError:
    return OpenAIError(400, message, code="invalid_json")


def _deeper_than(value: object, limit: int) -> bool:
    """Whether decoded JSON `value` nests more than `limit` arrays/objects deep (breadth first, no recursion)."""
    level = [value] if type(value) is dict or type(value) is list else []
    for _ in range(limit):
        below: list[dict[Any, Any] | list[Any]] = []
        for item in level:
            children = item.values() if type(item) is dict else item
            below += [c for c in children if type(c) is dict or type(c) is list]
        if not below:
            return False
        level = below
    return True


@dataclass(frozen=True, slots=True)
class JsonFields:
    """What the gateway reads of a JSON body: its `model` and OpenAI's `service_tier` (None when absent
    or not a string: the upstream judges the rest)."""

    model: str | None
    service_tier: str | None = None


def json_fields(body: bytes, *, max_depth: int) -> JsonFields:
    """The top-level `model` and `service_tier` of a JSON object body (each None when absent or null).

    Raises OpenAIError 400 (code invalid_json) for an empty body, bytes that are not strict JSON
    (RFC 8259: no NaN/Infinity, no lone surrogates, UTF-8 only), numbers out of range (integers
    past Python's 4300-digit limit, floats past a double's, 1e400), nesting deeper than `max_depth`,
    a top level that is not an object; 400 (param model, code invalid_value) for a `model` that is
    not a string.
    """
    if not body.strip():
        raise _invalid("The request body is empty; send a JSON object.")
    try:
        value = _decode(body)
    except RecursionError:
        raise _invalid(f"The JSON body is nested deeper than {max_depth} levels.") from None
    except UnicodeDecodeError as e:
        raise _invalid(f"The JSON body is not valid UTF-8 (byte {e.start}).") from None
    except msgspec.MsgspecError as e:
        raise _invalid(f"The request body is not valid JSON: {e}.") from None
    if _deeper_than(value, max_depth):  # ~0.1 ms for an 87 KB chat body with tools
        raise _invalid(f"The JSON body is nested deeper than {max_depth} levels.")
    if type(value) is not dict:
        raise _invalid(f"The request body must be a JSON object, not {_json_kind(value)}.")
    model = value.get("model")
    if model is not None and not isinstance(model, str):
        raise OpenAIError(
            400, f"`model` must be a string, not {_json_kind(model)}.", param="model", code="invalid_value"
        )
    tier = value.get("service_tier")
    return JsonFields(model, tier if isinstance(tier, str) else None)


def _json_kind(value: object) -> str:
    kinds = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return kinds.get(type(value), "null")


class FormScan:
    """The values of a multipart/form-data body's `model` text fields, read as the body passes.

    `feed` each chunk in order, then `finish` once the body has ended. Values are decoded with the
    part's charset (UTF-8 by default) and stripped, as the speech service reads them. Both raise
    OpenAIError 400 (code invalid_multipart) for a body the parser rejects (also one that ends
    before its closing boundary), a `model` part that is a file or longer than 1 KB.
    """

    def __init__(self, boundary: str) -> None:
        try:
            self._parser = PushMultipartParser(boundary, max_segment_count=_MAX_FORM_PARTS)
        except (MultipartError, ValueError) as e:
            raise _bad_form(f"bad boundary ({e})") from None
        self._segment: MultipartSegment | None = None
        self._value = bytearray()
        self.models: list[str] = []

    def feed(self, chunk: bytes) -> None:
        if chunk:  # b"" would tell the parser the body ended
            self._parse(chunk)

    def finish(self) -> list[str]:
        """The `model` values, once the body has ended (the parser then checks the form is complete)."""
        self._parse(b"")
        return self.models

    def _parse(self, chunk: bytes) -> None:
        try:
            for event in self._parser.parse(chunk):
                self._take(event)
        except MultipartError as e:
            raise _bad_form(str(e)) from None

    def _take(self, event: MultipartSegment | bytearray | None) -> None:
        if isinstance(event, MultipartSegment):
            self._segment = event
            self._value.clear()
            if event.name == "model" and event.filename is not None:
                raise _bad_form("`model` must be a text field, not a file", param="model")
            return
        segment = self._segment
        if segment is None or segment.name != "model":
            return
        if event:  # a piece of the part's content
            self._value += event
            if len(self._value) > _MAX_FIELD_BYTES:
                raise _bad_form(f"`model` is longer than {_MAX_FIELD_BYTES} bytes", param="model")
            return
        try:  # None: the part ended
            self.models.append(self._value.decode(segment.charset or "utf-8").strip())
        except (LookupError, UnicodeDecodeError):
            raise _bad_form(f"`model` is not valid {segment.charset or 'utf-8'}", param="model") from None


def _bad_form(why: str, param: str | None = None) -> OpenAIError:
    return OpenAIError(400, f"The multipart/form-data body is malformed: {why}.", param=param, code="invalid_multipart")
