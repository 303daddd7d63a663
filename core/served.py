"""Which models an OpenAI-compatible server serves, and the one a client takes when none is configured.

``GET {base_url}/v1/models`` answers ``{"object": "list", "data": [{"id": str, ...}, ...]}``
(https://platform.openai.com/docs/api-reference/models/list); vLLM lists its served model name
there, the june gateway the models the caller's key may use. june's rule, wherever a model is not
configured (the bots, the realtime session, token counting, `june up`'s banner, `june smoke`): the
first model listed. `base_url` is the server's root, without ``/v1`` (vLLM or the gateway).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx


class NoServedModel(ValueError):
    """The server lists no model, or answered GET /v1/models with something that is not a model list."""


def model_ids(listing: Any) -> list[str]:
    """The model ids of a GET /v1/models body (parsed JSON), in the server's order.

    Raises NoServedModel when the body is not OpenAI's list shape, an id is not a string, or it
    lists none.
    """
    data = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(data, list):
        raise NoServedModel(f"GET /v1/models answered no model list: {str(listing)[:200]}")
    ids: list[str] = [e["id"] for e in data if isinstance(e, dict) and isinstance(e.get("id"), str) and e["id"]]
    if len(ids) < len(data):
        raise NoServedModel(f"GET /v1/models listed a model without a string id: {str(data)[:200]}")
    if not ids:
        raise NoServedModel("the server lists no models")
    return ids


def served_models(http: httpx.Client, base_url: str = "", *, headers: Mapping[str, str] | None = None) -> list[str]:
    """The ids ``GET {base_url}/v1/models`` lists (`base_url` "" with a client that has its own).

    Raises httpx.HTTPError (unreachable, or a 4xx/5xx answer), NoServedModel.
    """
    response = http.get(f"{base_url.rstrip('/')}/v1/models", headers=headers)
    return model_ids(response.raise_for_status().json())


def served_model(http: httpx.Client, base_url: str = "", *, headers: Mapping[str, str] | None = None) -> str:
    """The first model ``GET {base_url}/v1/models`` lists: the one to use when none is configured.

    Raises as `served_models` does.
    """
    return served_models(http, base_url, headers=headers)[0]


async def served_models_async(
    http: httpx.AsyncClient, base_url: str = "", *, headers: Mapping[str, str] | None = None
) -> list[str]:
    """`served_models` over an async client."""
    response = await http.get(f"{base_url.rstrip('/')}/v1/models", headers=headers)
    return model_ids(response.raise_for_status().json())


async def served_model_async(
    http: httpx.AsyncClient, base_url: str = "", *, headers: Mapping[str, str] | None = None
) -> str:
    """`served_model` over an async client."""
    return (await served_models_async(http, base_url, headers=headers))[0]
