"""`june bench gateway`: what the gateway adds, measured against the same upstream in one run.

For each mode (streaming or not) and concurrency, the same requests go straight to the upstream and
then through the gateway (`python -m gateway`, no keys or limits: its bare proxying cost). Reported:
time to first body byte (TTFT for a stream; the whole answer otherwise), p50/p99 and what the gateway
adds to each, and throughput (requests/s) through the gateway as a fraction of direct.

The default upstream is a tiny OpenAI-shaped ASGI server in a subprocess (`--serve-stub`) that answers
at once, so the gateway's own overhead is what shows; `--upstream URL` measures a real server instead.
Goal (issue 4): < 1 ms added at p50 and >= 0.97x throughput. Client, stub and gateway share this
machine's cores, so on a small or busy machine the numbers are an upper bound of the overhead.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

STUB_MODEL = "stub-model"
_COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": STUB_MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
).encode()  # fmt: skip
_CHUNKS = [
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"stub-model","choices":[{"index":0,"delta":{"content":"tok"},"finish_reason":null}]}\n\n'
] * 16 + [b"data: [DONE]\n\n"]


async def stub_app(scope: dict, receive, send) -> None:  # noqa: ANN001 - raw ASGI: the fastest upstream uvicorn can run
    """A minimal OpenAI-shaped upstream: /health, and chat completions (16 SSE chunks when `"stream": true`)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/health":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})
        return
    if b'"stream": true' in body or b'"stream":true' in body:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for chunk in _CHUNKS:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(_COMPLETION)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": _COMPLETION})


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds `pid` has used (Linux /proc), 0.0 where /proc is unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _service(argv: list[str], env: dict[str, str], url: str, log: Path) -> Iterator[subprocess.Popen]:
    from june.procs import wait_ready

    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_ready(f"{url}/health", timeout=60, proc=proc, name=argv[-1])
            yield proc
        finally:
            proc.terminate()
            proc.wait(timeout=20)


@dataclass
class Run:
    """One measured batch: first-byte times (s) and the wall time."""

    first_byte: list[float]
    wall_s: float

    @property
    def throughput(self) -> float:
        return len(self.first_byte) / self.wall_s

    def pct(self, q: float) -> float:
        data = sorted(self.first_byte)
        return data[min(len(data) - 1, int(q * len(data)))]


async def _batch(base: str, body: dict, concurrency: int, requests: int, headers: dict[str, str]) -> Run:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120, trust_env=False) as client:
        # Warm the connections so both paths start with open sockets.
        await asyncio.gather(*(client.post("/v1/chat/completions", json=body, headers=headers) for _ in range(concurrency)))
        times: list[float] = []
        queue = iter(range(requests))

        async def worker() -> None:
            for _ in queue:
                start = time.perf_counter()
                async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
                    first = None
                    async for _chunk in r.aiter_raw():
                        if first is None:
                            first = time.perf_counter() - start
                    if r.status_code != 200:
                        raise RuntimeError(f"{base} answered {r.status_code}")
                times.append(first or 0.0)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return Run(times, time.perf_counter() - start)


def measure(
    direct: str, gateway: str, *, model: str, concurrencies: list[int], requests: int, max_tokens: int,
    api_key: str | None, gateway_pid: int | None = None,
) -> list[dict]:
    """Rows: mode, concurrency, direct/gateway p50/p99 first byte (ms), added (ms), throughput ratio,
    and the gateway process's CPU ms per request (load-independent: a busy machine stretches the
    wall-clock numbers, not this one)."""
    rows = []
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    for stream in (False, True):
        body = {"model": model, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": max_tokens, "stream": stream}
        for c in concurrencies:
            n = max(requests, 4 * c)
            d = asyncio.run(_batch(direct, body, c, n, headers))
            cpu = cpu_seconds(gateway_pid) if gateway_pid else 0.0
            g = asyncio.run(_batch(gateway, body, c, n, headers))
            cpu = (cpu_seconds(gateway_pid) - cpu) / (n + c) * 1e3 if gateway_pid else float("nan")  # + c warm-ups
            rows.append(
                {
                    "mode": "stream" if stream else "json", "concurrency": c, "requests": n,
                    "direct_p50_ms": d.pct(0.5) * 1e3, "direct_p99_ms": d.pct(0.99) * 1e3,
                    "gateway_p50_ms": g.pct(0.5) * 1e3, "gateway_p99_ms": g.pct(0.99) * 1e3,
                    "added_p50_ms": (g.pct(0.5) - d.pct(0.5)) * 1e3, "added_p99_ms": (g.pct(0.99) - d.pct(0.99)) * 1e3,
                    "direct_rps": d.throughput, "gateway_rps": g.throughput, "ratio": g.throughput / d.throughput, "gateway_cpu_ms": cpu,
                }
            )  # fmt: skip
    return rows


def print_table(rows: list[dict], console: Console) -> None:
    table = Table(title="Gateway overhead: same upstream, direct vs through the gateway")
    for name in ("mode", "conc", "n", "direct p50", "gw p50", "added p50", "direct p99", "gw p99", "added p99", "direct rps", "gw rps", "ratio", "gw cpu/req"):
        table.add_column(name, justify="right")
    for r in rows:
        table.add_row(
            r["mode"], str(r["concurrency"]), str(r["requests"]),
            f"{r['direct_p50_ms']:.2f}", f"{r['gateway_p50_ms']:.2f}", f"{r['added_p50_ms']:+.2f}",
            f"{r['direct_p99_ms']:.2f}", f"{r['gateway_p99_ms']:.2f}", f"{r['added_p99_ms']:+.2f}",
            f"{r['direct_rps']:.0f}", f"{r['gateway_rps']:.0f}", f"{r['ratio']:.2f}x", f"{r['gateway_cpu_ms']:.2f}",
        )  # fmt: skip
    console.print(table)
    console.print("times in ms to the first body byte; gw cpu/req: the gateway process's CPU ms per request")
    console.print(f"goal: added p50 < 1 ms, ratio >= 0.97x; load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def gateway(
    upstream: Annotated[str | None, typer.Option(help="Measure this OpenAI server (base URL, no /v1) instead of the built-in stub.")] = None,
    model: Annotated[str, typer.Option(help="Model name to send (the stub accepts any).")] = STUB_MODEL,
    concurrency: Annotated[list[int], typer.Option("--concurrency", "-c", help="Concurrency levels.")] = [1, 8, 64],  # noqa: B006
    requests: Annotated[int, typer.Option(help="Requests per (mode, concurrency) and path; at least 4x the concurrency.")] = 400,
    max_tokens: Annotated[int, typer.Option(help="max_tokens per request (matters for a real upstream).")] = 16,
    out: Annotated[Path | None, typer.Option(help="Also write the rows as JSON here.")] = None,
    serve_stub: Annotated[int | None, typer.Option(hidden=True, help="Internal: serve the stub on this port.")] = None,
) -> None:
    """Gateway overhead: added time to first byte (p50/p99) and throughput ratio, streaming and not."""
    if serve_stub is not None:
        import uvicorn

        uvicorn.run(stub_app, host="127.0.0.1", port=serve_stub, log_level="warning", access_log=False)
        return
    console = Console(width=160)
    logs = Path(os.environ.get("TMPDIR", "/tmp")) / "june-bench-gateway"
    logs.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        if upstream is None:
            port = _free_port()
            upstream = f"http://127.0.0.1:{port}"
            stub = [sys.executable, "-c", f"from benchmarks.perf.gateway import gateway; gateway(serve_stub={port}, concurrency=[1])"]
            stack.enter_context(_service(stub, {}, upstream, logs / "stub.log"))
        port = _free_port()
        env = {
            "JUNE_GATEWAY_HOST": "127.0.0.1", "JUNE_GATEWAY_PORT": str(port),
            "JUNE_GATEWAY_LLM_URL": upstream, "JUNE_GATEWAY_SPEECH_URL": upstream, "JUNE_GATEWAY_API_KEYS": "",
        }  # fmt: skip
        gw = f"http://127.0.0.1:{port}"
        proc = stack.enter_context(_service([sys.executable, "-m", "gateway"], env, gw, logs / "gateway.log"))
        console.print(f"upstream {upstream}, gateway {gw} (logs in {logs})")
        rows = measure(
            upstream, gw, model=model, concurrencies=concurrency, requests=requests, max_tokens=max_tokens,
            api_key=None, gateway_pid=proc.pid,
        )
    print_table(rows, console)
    if out is not None:
        out.write_text(json.dumps(rows, indent=2))

