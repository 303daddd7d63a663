"""API keys: where they come from, how a request's key is found, and which models it may use.

Keys come from settings (`api_keys`) and/or a file (`api_keys_file`, one per line:
`KEY`, `KEY model1,model2`, and/or `class=batch|interactive|live` after the key: the request class
its requests get, `core.priority`). No keys at all means an open gateway. Each key has an `id`
("key-" + 8 hex digits of its sha256) for metrics labels and limit counters: the key itself is
never logged, labelled or stored in Redis.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from core.priority import DEFAULT_CLASS, RequestClass, parse_class
from core.web import OpenAIError

ANONYMOUS = "anonymous"
"""The key id of requests to an open gateway."""


@dataclass(frozen=True)
class ApiKey:
    """One accepted key and what it may do."""

    secret: bytes
    """The key as bytes (compared in constant time)."""
    id: str
    """A stable, non-secret name for metrics and limits: "key-" + sha256(key)[:8]."""
    models: frozenset[str] | None = None
    """Models this key may use; None = all."""
    request_class: RequestClass = DEFAULT_CLASS
    """The class of its requests (`core.priority`) unless one asks for a lower one; the highest it may ask for."""

    def allows(self, model: str | None) -> bool:
        """Whether this key may use `model` (a request without a model is left to the upstream)."""
        return self.models is None or model is None or model in self.models


OPEN = ApiKey(b"", ANONYMOUS)
"""What an open gateway's requests run as: all models, limits per gateway."""


def make_key(secret: str, models: Sequence[str] | None = None, request_class: RequestClass = DEFAULT_CLASS) -> ApiKey:
    """An ApiKey for `secret`, with an allow-list when `models` is given."""
    raw = secret.encode()
    digest = "key-" + hashlib.sha256(raw).hexdigest()[:8]
    return ApiKey(raw, digest, frozenset(models) if models else None, request_class)


_LINE = "'KEY', 'KEY model1,model2', 'KEY class=batch' or 'KEY model1,model2 class=batch'"


def parse_keys_file(text: str) -> list[ApiKey]:
    """Keys from a keys file: per line `KEY`, then optionally `model1,model2` (the allow-list) and/or
    `class=live|interactive|batch` (its request class); blank lines and `#` comments skipped.

    Raises ValueError naming the line for more fields, a repeated field or an unknown class.
    """
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, *rest = line.split()
        models: list[str] | None = None
        request_class: RequestClass | None = None
        for field in rest:
            if field.startswith("class="):
                try:
                    chosen = parse_class(field.removeprefix("class="), default=DEFAULT_CLASS)
                except ValueError as e:
                    raise ValueError(f"keys file line {number}: {e}") from None
                if request_class is not None:
                    raise ValueError(f"keys file line {number}: class= given twice; expected {_LINE}")
                request_class = chosen
            elif models is None:
                models = [m.strip() for m in field.split(",") if m.strip()]
            else:
                raise ValueError(f"keys file line {number}: expected {_LINE}, got {len(rest) + 1} fields")
        keys.append(make_key(key, models, request_class or DEFAULT_CLASS))
    return keys


def load_keys(api_keys: Sequence[SecretStr], keys_file: Path | None) -> list[ApiKey]:
    """Keys from settings (all models) then from `keys_file`; raises OSError/ValueError for a bad file."""
    keys = [make_key(k.get_secret_value()) for k in api_keys]
    if keys_file is not None:
        keys += parse_keys_file(keys_file.read_text())
    return keys


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


def find_key(key: str, keys: Sequence[ApiKey]) -> ApiKey | None:
    """The entry of `keys` equal to `key`, compared in constant time against every key; None if none."""
    given = key.encode()
    found = None
    for candidate in keys:
        # No early exit: the time taken does not tell which key (or how much of one) matched.
        if hmac.compare_digest(given, candidate.secret):
            found = candidate
    return found


def key_matches(key: str, keys: Sequence[SecretStr]) -> bool:
    """Whether `key` is one of `keys` (constant time)."""
    return find_key(key, [make_key(k.get_secret_value()) for k in keys]) is not None


def authenticate(header: str | None, keys: Sequence[ApiKey]) -> ApiKey:
    """The ApiKey an `Authorization` header carries. Raises OpenAIError 401 (invalid_api_key)."""
    key = bearer_key(header)
    if key is None:
        raise _unauthorized("You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.")
    entry = find_key(key, keys)
    if entry is None:
        raise _unauthorized("Incorrect API key provided.")
    return entry


def check_model(key: ApiKey, model: str | None) -> None:
    """Raise unless `key` may use `model` (a request body's `model`; None or "" when it names none).

    A key without an allow-list may use any model, or none (the upstream's default). A key with
    one must name a model (vLLM and speech serve their default model for a missing or empty
    `model`, which the list may not hold): OpenAIError 400 (param model, code missing_model);
    a model outside the list: 403 (code model_not_allowed).
    """
    if key.models is None:
        return
    if not model:
        raise OpenAIError(
            400, "This API key may only use the models it lists, so the request must name one in `model`.",
            param="model", code="missing_model",
        )  # fmt: skip
    if model not in key.models:
        raise model_forbidden(key, model)


def model_forbidden(key: ApiKey, model: str) -> OpenAIError:
    """The 403 for a key using a model outside its allow-list (OpenAI's permission_error envelope)."""
    return OpenAIError(403, f"This API key may not use the model '{model}'.", param="model", code="model_not_allowed")
