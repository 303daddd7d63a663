"""Token counts from the served model's tokenizer (vLLM /tokenize, directly or through the gateway),
cached, with an estimate that never undercounts CJK when the tokenizer cannot be asked."""

from __future__ import annotations

import math

import httpx
import pytest
import respx
from pydantic import SecretStr

from bots.history import MemoryStore
from core.served import served_model_async
from core.tokens import TokenCounter, estimate_tokens
from gateway.app import create_app
from tests.gateway.conftest import gateway_settings, serve_in_thread

pytestmark = pytest.mark.anyio

JAPANESE = (
    "今日はいい天気ですね。明日も晴れるでしょうか。週末は友達と一緒に京都へ旅行に行く予定です。"
    "お寺をたくさん見て、おいしい抹茶を飲みたいと思っています。"
)
CJK = [
    JAPANESE,
    "今天天气很好。我们明天去北京看长城吧，然后在附近的饭馆吃烤鸭。你觉得怎么样？",
    "안녕하세요. 오늘 날씨가 정말 좋네요. 내일은 친구와 함께 서울에 갈 거예요.",
]
TURNS = [
    ("東京で一番おすすめの観光地はどこですか？", "浅草寺がおすすめです。雷門や仲見世通りも楽しめますよ。"),
    ("京都では何を食べたらいいですか？", "湯豆腐や抹茶のお菓子、にしんそばがおすすめです。"),
    ("大阪の名物料理を教えてください。", "たこ焼きとお好み焼きが有名です。串カツもぜひどうぞ。"),
]


def chars_over_4(text: str) -> int:
    """The old rule (the old approx_tokens)."""
    return math.ceil(len(text) / 4)


async def tokenizer_count(llm_url: str, text: str) -> int:
    """The count vLLM's /tokenize gives, asked directly."""
    async with httpx.AsyncClient(timeout=30) as http:
        model = await served_model_async(http, llm_url)
        answer = await http.post(
            f"{llm_url}/tokenize", json={"model": model, "prompt": text, "add_special_tokens": False}
        )
    answer.raise_for_status()
    return answer.json()["count"]


def test_the_estimate_counts_cjk_characters_one_each_and_ascii_by_quarters():
    assert estimate_tokens("") == 0 and estimate_tokens("abcd") == 1 and estimate_tokens("abcde") == 2
    assert estimate_tokens("今日は") == 3 and estimate_tokens("こんにちは、世界！") == 9
    assert estimate_tokens("Hi 世界") == 1 + 2 and estimate_tokens("안녕") == 2


@pytest.mark.slow
async def test_japanese_is_counted_as_the_served_model_counts_it(llm_url: str):
    real = await tokenizer_count(llm_url, JAPANESE)
    asked: list[str] = []

    async def seen(request: httpx.Request) -> None:
        asked.append(request.url.path)

    async with httpx.AsyncClient(timeout=30, event_hooks={"request": [seen]}) as http:
        counter = TokenCounter(http, llm_url)
        assert await counter.count(JAPANESE) == real
        assert await counter.count(JAPANESE) == real and counter.cached(JAPANESE) == real
    assert asked.count("/tokenize") == 1  # the second count came from the cache
    assert real > 1.5 * chars_over_4(JAPANESE)  # what the old rule missed


@pytest.mark.slow
async def test_the_estimate_never_undercounts_cjk(llm_url: str):
    for text in CJK:
        assert estimate_tokens(text) >= await tokenizer_count(llm_url, text), text


@pytest.mark.slow
async def test_the_history_budget_trims_a_japanese_chat_that_chars_over_4_kept(llm_url: str):
    sizes = [await tokenizer_count(llm_url, u) + await tokenizer_count(llm_url, a) for u, a in TURNS]
    budget = sizes[1] + sizes[2]  # room for the last two turns, by the tokenizer
    assert sum(chars_over_4(u) + chars_over_4(a) for u, a in TURNS) <= budget  # the old rule kept all three
    async with httpx.AsyncClient(timeout=30) as http:
        store = MemoryStore(max_turns=10, max_tokens=budget, ttl=None, counter=TokenCounter(http, llm_url))
        for user, reply in TURNS:
            await store.add("chat", user, reply)
        kept = [m["content"] for m in await store.messages("chat")]
    assert kept == [t for turn in TURNS[1:] for t in turn]


@pytest.mark.slow
async def test_the_gateway_serves_tokenize_under_the_callers_key(llm_url: str):
    app = create_app(gateway_settings(llm_url, read_timeout=60, api_keys=[SecretStr("sk-june-tok")]))
    with serve_in_thread(app) as url:
        async with httpx.AsyncClient(timeout=60) as http:
            counter = TokenCounter(http, url, api_key="sk-june-tok")
            assert await counter.count(JAPANESE) == await tokenizer_count(llm_url, JAPANESE)
            refused = await http.post(f"{url}/tokenize", json={"prompt": "hi"})
            wrong = await http.get(f"{url}/tokenize", headers={"Authorization": "Bearer sk-june-tok"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert wrong.status_code == 405 and "error" in wrong.json()


async def test_without_tokenize_the_estimate_is_used_and_the_server_is_not_asked_again():
    with respx.mock(assert_all_called=False) as edge:
        models = edge.get("http://llm.test/v1/models").respond(json={"object": "list", "data": [{"id": "m"}]})
        tokenize = edge.post("http://llm.test/tokenize").respond(404, json={"detail": "Not Found"})
        async with httpx.AsyncClient() as http:
            counter = TokenCounter(http, "http://llm.test")
            assert await counter.count(JAPANESE) == estimate_tokens(JAPANESE) == len(JAPANESE)
            assert await counter.count("another text") == estimate_tokens("another text")
    assert tokenize.call_count == 1 and models.call_count == 1


async def test_a_failed_count_falls_back_once_and_is_not_cached():
    with respx.mock(assert_all_called=False) as edge:
        tokenize = edge.post("http://llm.test/tokenize")
        tokenize.side_effect = [
            httpx.ConnectError("refused"),
            httpx.Response(200, json={"count": 7, "max_model_len": 4096, "tokens": []}),
        ]
        async with httpx.AsyncClient() as http:
            counter = TokenCounter(http, "http://llm.test", model="m")
            assert await counter.count("hello there") == estimate_tokens("hello there")
            assert await counter.count("hello there") == 7
            assert await counter.count("hello there") == 7
            assert await counter.count("x" * (counter.max_chars + 1)) == math.ceil(
                (counter.max_chars + 1) / 4
            )  # too long: not sent
    assert tokenize.call_count == 2
