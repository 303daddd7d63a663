"""`core.served`: the first model ``GET /v1/models`` lists, june's one rule where none is configured."""

from __future__ import annotations

import httpx
import pytest
import respx

from core.served import NoServedModel, model_ids, served_model, served_model_async, served_models

LISTING = {"object": "list", "data": [{"id": "qwen", "object": "model"}, {"id": "Qwen/Qwen3-30B", "object": "model"}]}


def test_ids_come_in_the_servers_order() -> None:
    assert model_ids(LISTING) == ["qwen", "Qwen/Qwen3-30B"]


@pytest.mark.parametrize(
    "listing",
    [
        {"object": "list", "data": []},  # nothing served
        {"error": {"message": "no"}},  # not a list
        [{"id": "qwen"}],  # the data without its envelope
        {"data": [{"id": "qwen"}, {"name": "x"}]},  # an entry without an id
        {"data": [{"id": 7}]},
        {"data": [{"id": ""}]},
        "qwen",
    ],
)
def test_anything_but_a_model_list_is_refused(listing: object) -> None:
    with pytest.raises(NoServedModel):
        model_ids(listing)


def test_the_first_listed_model_is_asked_of_the_server_root_with_the_callers_headers() -> None:
    with respx.mock(assert_all_called=True) as edge:
        route = edge.get("http://gw.test/v1/models").respond(json=LISTING)
        with httpx.Client() as http:
            assert served_model(http, "http://gw.test/", headers={"Authorization": "Bearer sk-a"}) == "qwen"
        with httpx.Client(base_url="http://gw.test") as http:
            assert served_models(http) == ["qwen", "Qwen/Qwen3-30B"]
    assert route.calls[0].request.headers["authorization"] == "Bearer sk-a"


@pytest.mark.anyio
async def test_the_async_twin_and_a_refusal() -> None:
    with respx.mock(assert_all_called=True) as edge:
        edge.get("http://gw.test/v1/models").mock(
            side_effect=[httpx.Response(200, json=LISTING), httpx.Response(401, json={"error": {"message": "bad key"}})]
        )
        async with httpx.AsyncClient() as http:
            assert await served_model_async(http, "http://gw.test") == "qwen"
            with pytest.raises(httpx.HTTPStatusError):
                await served_model_async(http, "http://gw.test")
