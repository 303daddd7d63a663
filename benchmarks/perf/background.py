"""The fixed background load of `june bench realtime --busy`: other work through the same gateway.

Two kinds of work, started together (`Background.start`) just before the busy live turns:

- a burst of bot voice messages exactly as `june bench load` sends them (`benchmarks.perf.load`:
  the bots' own core, their deadline and Retry-After waits): `users` users send one voice message
  each at the same moment; the burst is left to finish, and each reply's time is recorded;
- `chat_loops` loops of plain API chat completions marked `X-June-Class: batch` (`core.priority`),
  each a fixed prompt (`CHAT_PROMPT`, about 100 words asked, `chat_max_tokens` at most), one
  after another until `stop_loops` (the last busy turn has ended); the completion in flight then
  finishes and counts.

The load runs in a thread of its own with its own event loop, so its client-side work (OGG/Opus encoding,
JSON) never delays the timestamps the live turns are measured by. A gateway that refuses the class
header (a 4xx naming it) gets the loops' requests without it, and the report says so.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.perf.load import Burst, UserResult, prepared_burst
from core.priority import HEADER

CHAT_PROMPT = "Explain in about one hundred words how a bicycle stays upright while it moves."
"""The chat loops' prompt: an answer of about 100 words (~130 tokens), bounded by `chat_max_tokens`."""
BURST_TEXT = "What is the capital of France?"
"""What the burst's voice message says (spoken by the gateway's speech once, before the burst)."""


@dataclass(frozen=True)
class BackgroundSpec:
    """What the background load is; the defaults are the documented load of `june bench realtime --busy`."""

    users: int = 10
    """Bot users in the burst, one voice message each, all at once (0: no burst)."""
    chat_loops: int = 1
    """Concurrent loops of batch-class chat completions (0: none)."""
    chat_max_tokens: int = 160
    """max_tokens of each chat completion."""
    clip: Path | None = None
    """The burst's voice message (any format speech decodes); None: `BURST_TEXT` spoken by the gateway."""

    def describe(self) -> str:
        """One line for the report: what ran in the background."""
        return (
            f"{self.users} bot voice messages at once (`june bench load -n {self.users}`) + {self.chat_loops} "
            f"looping chat completion(s) with {HEADER}: batch (max_tokens {self.chat_max_tokens})"
        )


@dataclass
class BackgroundResult:
    """What the background work got; times in seconds from its start."""

    burst: list[UserResult] = field(default_factory=list)
    burst_busy_answers: int = 0
    """429/503 answers the gateway gave the burst (waited out or turned into an apology)."""
    clip_s: float = 0.0
    chat_seconds: list[float] = field(default_factory=list)
    """Each completed chat completion's time, request to last byte."""
    chat_errors: list[str] = field(default_factory=list)
    """Status and start of the error body of each chat completion that failed (429/503 included)."""
    class_header: str = "batch"
    """"batch", or "refused (sent without)" when the gateway refused the header."""
    error: str | None = None
    """Why the background could not be prepared or run (then nothing of it ran)."""


class Background:
    """The background load in a thread: `start()` returns once it is prepared and sent off, `stop_loops()`
    ends the chat loops after their current request, `join()` waits for the burst and returns the result."""

    def __init__(self, gateway: str, api_key: str | None, spec: BackgroundSpec, *, timeout: float = 300.0) -> None:
        self.gateway = gateway
        self.api_key = api_key
        self.spec = spec
        self.timeout = timeout
        self.result = BackgroundResult()
        self._started = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="june-bench-background", daemon=True)

    def start(self) -> None:
        """Prepare (speak the clip, look up the model) and start the work; raises RuntimeError when
        preparing failed."""
        self._thread.start()
        self._started.wait()
        if self.result.error is not None:
            self._thread.join()
            raise RuntimeError(f"the background load could not start: {self.result.error}")

    def stop_loops(self) -> None:
        """End the chat loops: each finishes the request in flight and sends no other."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> BackgroundResult:
        """Stop the loops and wait (up to `timeout` s) for the burst to finish; the result so far."""
        self.stop_loops()
        self._thread.join(timeout)
        return self.result

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except Exception as e:  # noqa: BLE001 - reported in the result (and by `start`), never lost in the thread
            self.result.error = f"{type(e).__name__}: {e}"
        finally:
            self._started.set()

    async def _run(self) -> None:
        spec = self.spec
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        async with (
            prepared_burst(self.gateway, self.api_key, spec.users, spec.clip, BURST_TEXT) as burst,
            httpx.AsyncClient(base_url=self.gateway, headers=headers, timeout=self.timeout) as http,
        ):
            model = ""
            if spec.chat_loops:
                response = await http.get("/v1/models")
                response.raise_for_status()
                model = response.json()["data"][0]["id"]
            self.result.clip_s = burst.clip_s
            self._started.set()
            jobs = [self._chat_loop(http, model) for _ in range(spec.chat_loops)]
            if spec.users:
                jobs.append(self._burst(burst))
            await asyncio.gather(*jobs)

    async def _burst(self, burst: Burst) -> None:
        self.result.burst = await burst.run()
        self.result.burst_busy_answers = burst.busy_answers

    async def _chat_loop(self, http: httpx.AsyncClient, model: str) -> None:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": CHAT_PROMPT}],
            "max_tokens": self.spec.chat_max_tokens,
        }
        while not self._stop.is_set():
            headers = {HEADER: "batch"} if self.result.class_header == "batch" else {}
            start = time.perf_counter()
            try:
                response = await http.post("/v1/chat/completions", json=body, headers=headers)
            except httpx.HTTPError as e:
                self.result.chat_errors.append(f"{type(e).__name__}: {e}"[:200])
                await asyncio.sleep(1.0)
                continue
            if response.is_success:
                self.result.chat_seconds.append(time.perf_counter() - start)
            elif headers and 400 <= response.status_code < 500 and HEADER.lower() in response.text.lower():
                self.result.class_header = "refused (sent without)"  # a gateway without classes: send none
            else:
                self.result.chat_errors.append(f"{response.status_code}: {response.text[:160]}")
                await asyncio.sleep(1.0)
