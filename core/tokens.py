"""Token counts of chat text, from the served model's own tokenizer when it can be asked.

`TokenCounter.count` asks vLLM's ``POST {base_url}/tokenize`` (the gateway proxies the same path
under the same API key) for ``{"model", "prompt", "add_special_tokens": false}`` and reads ``count``
from the answer ``{"count", "max_model_len", "tokens"}``. Answers are kept in an LRU (text → count),
so re-counting a chat's history on every turn asks only about the new texts.

When the tokenizer cannot be asked (the server has no /tokenize, refuses, is down, or the text is
longer than `max_chars`), the count is `estimate_tokens`, a rule that never undercounts CJK:

- each CJK character (Han, kana, Hangul, CJK and full-width punctuation) is one token;
- every other non-ASCII character is one token too (accented Latin and Cyrillic are often cheaper
  in byte-level BPE tokenizers such as Qwen's; emoji and rare scripts can cost more);
- ASCII is a quarter of its length, rounded up (English and code run ~4 characters a token).

Measured with Qwen2.5-Coder-0.5B's tokenizer (vLLM /tokenize): 74 characters of Japanese are 40
tokens, 38 of Chinese 24, 43 of Korean 29; the old rule (all characters / 4) said 19, 10 and 11,
so a history "within" 2000 tokens could fill a 4096-token context twice over. The estimate says
74, 38 and 34 (over, never under); for English and code it is the old rule (code runs a little
over it: 56 characters of Python are 22 tokens, estimated 14).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Iterable

import httpx

from core.served import served_model_async

log = logging.getLogger(__name__)

MAX_CHARS = 32_768
"""Longest text sent to /tokenize; longer ones are estimated (their estimate already exceeds any
history budget, so the exact figure would change nothing)."""


def estimate_tokens(text: str) -> int:
    """Tokens in `text` without a tokenizer: ceil(ASCII characters / 4) + one per other character.

    Never undercounts CJK (one token per character, which Qwen-family and Llama-family tokenizers
    reach or beat); slightly overcounts Chinese, where common pairs of characters share one token.
    """
    ascii_chars = sum(1 for c in text if c < "\x80")
    return math.ceil(ascii_chars / 4) + (len(text) - ascii_chars)


class TokenCounter:
    """Counts tokens as the model at `base_url` does (vLLM's /tokenize), cached, with a fallback.

    `http` is the caller's client (its timeouts and tracing apply; each call here is also bounded by
    `timeout` seconds); `base_url` is the server root (vLLM or the june gateway, not ``/v1``);
    `api_key` goes out as ``Authorization: Bearer``; `model` is the served model id (unset: the
    first one ``GET /v1/models`` lists, asked once). With `http` or `base_url` None nothing is
    asked and every count is `estimate_tokens`.

    A server without /tokenize (404/405/501) is not asked again for `retry_after` seconds; other
    failures (connection, 5xx, 429, bad JSON) fall back for that one call. Fallback counts are not
    cached, so the exact count replaces them once the server answers.
    """

    def __init__(
        self,
        http: httpx.AsyncClient | None = None,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        model: str | None = None,
        cache_size: int = 4096,
        max_chars: int = MAX_CHARS,
        timeout: float = 10.0,
        retry_after: float = 300.0,
        concurrency: int = 4,
    ) -> None:
        self._http, self._base_url = http, base_url.rstrip("/") if base_url else None
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._model = model
        self._cache: OrderedDict[str, int] = OrderedDict()
        self._cache_size, self.max_chars, self._timeout, self._retry_after = cache_size, max_chars, timeout, retry_after
        self._unsupported_until = 0.0
        self._slots = asyncio.Semaphore(concurrency)

    @property
    def asks(self) -> bool:
        """Whether counts may come from a server's tokenizer (else they are all estimates)."""
        return self._http is not None and self._base_url is not None

    def cached(self, text: str) -> int:
        """The tokenizer's count of `text` if known, else `estimate_tokens(text)`; never waits."""
        known = self._cache.get(text)
        return estimate_tokens(text) if known is None else known

    async def count(self, text: str) -> int:
        """Tokens in `text` (no special tokens added): the tokenizer's count, or the fallback."""
        known = self._cache.get(text)
        if known is not None:
            self._cache.move_to_end(text)
            return known
        if not text:
            return 0
        if not self.asks or len(text) > self.max_chars or time.monotonic() < self._unsupported_until:
            return estimate_tokens(text)
        async with self._slots:
            counted = await self._ask(text)
        if counted is None:
            return estimate_tokens(text)
        self._cache[text] = counted
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return counted

    async def total(self, texts: Iterable[str]) -> int:
        """The sum of `count` over `texts`, the uncached ones asked concurrently (`concurrency` at a time)."""
        return sum(await asyncio.gather(*(self.count(t) for t in texts)))

    async def _ask(self, text: str) -> int | None:
        assert self._http is not None
        try:
            async with asyncio.timeout(self._timeout):
                if self._model is None:
                    self._model = await served_model_async(self._http, self._base_url or "", headers=self._headers)
                model = self._model
                response = await self._http.post(
                    f"{self._base_url}/tokenize",
                    json={"model": model, "prompt": text, "add_special_tokens": False},
                    headers=self._headers,
                )
                if response.status_code in (404, 405, 501):
                    self._unsupported_until = time.monotonic() + self._retry_after
                    log.warning(
                        "%s/tokenize answered %d: counting tokens by estimate for %.0f s",
                        self._base_url,
                        response.status_code,
                        self._retry_after,
                    )
                    return None
                response.raise_for_status()
                counted = response.json()["count"]
        except (httpx.HTTPError, TimeoutError, ValueError, KeyError, TypeError, IndexError) as e:
            log.info("token count by estimate: %s/tokenize failed (%s: %s)", self._base_url, type(e).__name__, e)
            return None
        return counted if isinstance(counted, int) and counted >= 0 else None
