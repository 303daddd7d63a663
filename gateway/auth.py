"""Optional bearer-key check for the /v1 routes, as a Litestar guard."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard
from pydantic import SecretStr

from june.web import OpenAIError


def _unauthorized(message: str) -> OpenAIError:
    return OpenAIError(
        401, message, type="authentication_error", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
    )


def bearer_key(header: str | None) -> str | None:
    """The key from an `Authorization: Bearer <key>` header (scheme case-insensitive), else None."""
    if not header:
        return None
    scheme, _, key = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


def key_matches(key: str, keys: Sequence[SecretStr]) -> bool:
    """Whether `key` is one of `keys`, compared in constant time against every key."""
    given = key.encode()
    found = False
    for candidate in keys:
        # No early exit: the time taken does not tell which key (or how much of one) matched.
        found |= hmac.compare_digest(given, candidate.get_secret_value().encode())
    return found


def api_key_guard(keys: Sequence[SecretStr]) -> Guard:
    """A guard that lets a request through only with `Authorization: Bearer <one of keys>`.

    Raises OpenAIError 401 (type authentication_error, code invalid_api_key) otherwise.
    """
    accepted = tuple(keys)

    def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        key = bearer_key(connection.headers.get("authorization"))
        if key is None:
            raise _unauthorized(
                "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'."
            )
        if not key_matches(key, accepted):
            raise _unauthorized("Incorrect API key provided.")

    return guard
