"""`june bench gateway`: what the gateway adds, measured against the same upstream in one run.

For each upstream, mode (streaming or not) and concurrency, the same requests go straight to the
upstream and through the gateway, taking turns over `--rounds` rounds (`python -m gateway`, no keys
or limits: its bare proxying cost). Reported: time to first body byte (TTFT for a stream; the whole
answer otherwise), p50/p99 and what the gateway adds to each, throughput (requests/s) through the
gateway as a fraction of direct, and the gateway process's CPU time per request.

Upstreams (`--stub`, default both): a small OpenAI-shaped ASGI server in a subprocess that
- `instant`: answers at once, so latency differences are the gateway's own cost. At low
  concurrency throughput is then just 1/latency, so the ratio there measures sub-millisecond
  latency, not capacity;
- `paced`: generates like vLLM would (first token after `--ttft-ms`, then one SSE chunk per
  `--tpot-ms`; a JSON answer after the same total), so the ratio shows whether the gateway holds
  the upstream's throughput when the upstream does the work a real one does.
`--upstream URL` measures a real server (e.g. june's CPU vLLM) instead.

Goal (issue 4): < 1 ms added at p50 and >= 0.97x throughput. With `--pin` (the default where
there are 2+ CPUs) the proxy under test gets a CPU of its own and the load generator and stub
share the rest, as in a deployment where clients and the inference server do not run on the
gateway's cores; `--no-pin` lets all of them contend for every core, so on a small machine the
numbers then measure the contention as much as the overhead. With `--poll-idle` (the default) the
run holds the kernel's CPU latency target at 0 µs (`/dev/cpu_dma_latency`, as tuned's
latency-performance profile does), so idle CPUs poll instead of halting; on a VM, waking a halted
vCPU costs 0.1-0.3 ms a hop, which would otherwise be billed to the proxy's extra hop (it needs
root; the table says whether the hold took).
The load generator is aiohttp on one event loop (cheaper per request than httpx, so it takes less
of the shared CPU from what it measures).
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from core.procs import free_port, running

STUB_MODEL = "stub-model"
MIN_WAVES = 16
"""Requests per round are at least this many times the concurrency. Each round starts with all
`concurrency` requests at once, a burst the proxy starts one by one; with 4 waves a round that
burst dominated the p50 at concurrency 64 (from -1.8 to +6.0 ms added across runs of the same
code); with 16 the steady state does (-3.1 to -0.04 ms, json and stream, in two runs)."""
Stub = Literal["instant", "paced"]


def _completion(tokens: int) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": STUB_MODEL,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "tok" * tokens}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": 5 + tokens},
        }
    ).encode()  # fmt: skip


_CHUNK = (
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"stub-model",'
    b'"choices":[{"index":0,"delta":{"content":"tok"},"finish_reason":null}]}\n\n'
)
_DONE = b"data: [DONE]\n\n"

# Raw ASGI (the stub and the relay need no framework): what the server hands an app.
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


async def _read_all(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def stub_app(ttft_s: float = 0.0, tpot_s: float = 0.0) -> ASGIApp:
    """A minimal OpenAI-shaped upstream: /health, and chat completions of `max_tokens` tokens
    (default 16): SSE chunks when `"stream": true`, else one JSON body. With `ttft_s`/`tpot_s`
    it waits like a generating server: ttft before the first token, tpot before each next one."""

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = await _read_all(receive)
        if scope["path"] == "/health":
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": b"{}"})
            return
        request = json.loads(body) if body else {}
        tokens = int(request.get("max_tokens") or 16)
        if request.get("stream"):
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
            )
            for i in range(tokens):
                if ttft_s or tpot_s:
                    await asyncio.sleep(tpot_s if i else ttft_s)
                await send({"type": "http.response.body", "body": _CHUNK, "more_body": True})
            await send({"type": "http.response.body", "body": _DONE})
            return
        if ttft_s or tpot_s:
            await asyncio.sleep(ttft_s + (tokens - 1) * tpot_s)
        answer = _completion(tokens)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    return app


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds `pid` has used (Linux /proc), 0.0 where /proc is unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    import aiohttp

    payload = json.dumps(body).encode()
    headers = {**headers, "content-type": "application/json"}
    url = f"{base}/v1/chat/completions"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector, auto_decompress=False, timeout=aiohttp.ClientTimeout(total=300)
    ) as session:

        async def one() -> float:
            start = time.perf_counter()
            first = None
            async with session.post(url, data=payload, headers=headers) as r:
                async for _chunk in r.content.iter_any():
                    if first is None:
                        first = time.perf_counter() - start
                if r.status != 200:
                    raise RuntimeError(f"{base} answered {r.status}")
            return first or 0.0

        # Warm the connections so both paths start with open sockets.
        await asyncio.gather(*(one() for _ in range(concurrency)))
        times: list[float] = []
        queue = iter(range(requests))

        async def worker() -> None:
            for _ in queue:
                times.append(await one())

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return Run(times, time.perf_counter() - start)


def measure(
    direct: str,
    through: dict[str, tuple[str, int | None]],
    *,
    model: str,
    concurrencies: list[int],
    requests: int,
    max_tokens: int,
    api_key: str | None,
    upstream: str = "",
    rounds: int = 3,
) -> list[dict]:
    """Rows per mode, concurrency and proxy in `through` (name → (base URL, pid or None)): direct
    and proxied p50/p99 first byte (ms), added (ms), throughput ratio, and the proxy process's CPU
    ms per request (load-independent: a busy machine stretches the wall-clock numbers, not this one).

    The paths take turns: `rounds` rounds of direct, then each proxy, with the requests split over
    them (at least MIN_WAVES x the concurrency per round), and their times pooled. A slow spell of a shared
    machine then lands on every path alike instead of on whichever ran during it.
    """
    rows = []
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    paths = {"direct": (direct, None), **through}
    for stream in (False, True):
        body = {
            "model": model,
            "messages": [{"role": "user", "content": "Say hi."}],
            "max_tokens": max_tokens,
            "stream": stream,
        }
        for c in concurrencies:
            per_round = max(-(-requests // rounds), MIN_WAVES * c)
            runs = {name: Run([], 0.0) for name in paths}
            cpu = dict.fromkeys(paths, 0.0)
            for _ in range(rounds):
                for name, (url, pid) in paths.items():
                    before = cpu_seconds(pid) if pid else 0.0
                    run = asyncio.run(_batch(url, body, c, per_round, headers))
                    cpu[name] += cpu_seconds(pid) - before if pid else 0.0
                    runs[name].first_byte += run.first_byte
                    runs[name].wall_s += run.wall_s
            d = runs["direct"]
            for via, (_url, pid) in through.items():
                g = runs[via]
                rows.append(
                    {
                        "upstream": upstream, "mode": "stream" if stream else "json", "concurrency": c,
                        "requests": per_round * rounds, "via": via,
                        "direct_p50_ms": d.pct(0.5) * 1e3, "direct_p99_ms": d.pct(0.99) * 1e3,
                        "gateway_p50_ms": g.pct(0.5) * 1e3, "gateway_p99_ms": g.pct(0.99) * 1e3,
                        "added_p50_ms": (g.pct(0.5) - d.pct(0.5)) * 1e3,
                        "added_p99_ms": (g.pct(0.99) - d.pct(0.99)) * 1e3,
                        "direct_rps": d.throughput, "gateway_rps": g.throughput, "ratio": g.throughput / d.throughput,
                        # + c warm-ups a round
                        "gateway_cpu_ms": cpu[via] / ((per_round + c) * rounds) * 1e3 if pid else float("nan"),
                    }
                )  # fmt: skip
    return rows


def print_table(rows: list[dict], console: Console) -> None:
    table = Table(title="Gateway overhead: same upstream, direct vs through the gateway (and a bare relay)")
    for name in (
        "upstream",
        "mode",
        "conc",
        "n",
        "via",
        "direct p50",
        "via p50",
        "added p50",
        "direct p99",
        "via p99",
        "added p99",
        "direct rps",
        "via rps",
        "ratio",
        "cpu/req",
    ):
        table.add_column(name, justify="right")
    for r in rows:
        table.add_row(
            r["upstream"], r["mode"], str(r["concurrency"]), str(r["requests"]), r["via"],
            f"{r['direct_p50_ms']:.2f}", f"{r['gateway_p50_ms']:.2f}", f"{r['added_p50_ms']:+.2f}",
            f"{r['direct_p99_ms']:.2f}", f"{r['gateway_p99_ms']:.2f}", f"{r['added_p99_ms']:+.2f}",
            f"{r['direct_rps']:.0f}", f"{r['gateway_rps']:.0f}", f"{r['ratio']:.2f}x", f"{r['gateway_cpu_ms']:.2f}",
        )  # fmt: skip
    console.print(table)
    console.print(
        "times in ms to the first body byte; cpu/req: the proxy process's CPU ms per request; relay: a bare 20-line\n"
        "aiohttp relay with no keys, limits, metrics or traces, the cost of the extra hop alone on this machine"
    )
    console.print(
        f"goal: added p50 < 1 ms, ratio >= 0.97x; load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )


def relay_app(upstream: str) -> ASGIApp:
    """The least a proxy can do: relay method, path, headers and body to `upstream` and the answer
    back, with aiohttp, nothing else. `june bench gateway` measures it next to the gateway, so the
    table shows what the extra hop itself costs on this machine and what the gateway's features add."""
    import aiohttp

    sessions: list[aiohttp.ClientSession] = []

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                sessions.append(
                    aiohttp.ClientSession(
                        upstream, auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept")
                    )
                )
                await send({"type": "lifespan.startup.complete"})
            await sessions[0].close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = await _read_all(receive)
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k != b"host"]
        async with sessions[0].request(scope["method"], scope["path"], data=body, headers=headers) as r:
            hop = (b"transfer-encoding", b"connection", b"date", b"server")
            await send(
                {
                    "type": "http.response.start",
                    "status": r.status,
                    "headers": [(k.lower(), v) for k, v in r.raw_headers if k.lower() not in hop],
                }
            )
            async for chunk in r.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


CPU_LATENCY_QOS = Path("/dev/cpu_dma_latency")


@contextmanager
def idle_polling(enabled: bool = True, qos: Path = CPU_LATENCY_QOS) -> Iterator[bool]:
    """Hold the CPU latency QoS target at 0 µs while inside, so idle CPUs poll rather than halt.

    Yields whether the hold took: False when not `enabled`, or where `qos` cannot be opened for
    writing (not root, not Linux). The request lasts while the file stays open and ends when it is
    closed, also when this process dies. Source: the kernel's PM QoS interface,
    https://docs.kernel.org/power/pm_qos_interface.html (write an s32 in µs to the open node).
    """
    if not enabled:
        yield False
        return
    try:
        fd = os.open(qos, os.O_WRONLY)
    except OSError:
        yield False
        return
    try:
        os.write(fd, struct.pack("=i", 0))
        yield True
    finally:
        os.close(fd)


def split_cpus(pin: bool) -> tuple[set[int], set[int]] | None:
    """(proxy CPUs, everyone else's) when pinning is asked for and possible: the last CPU this
    process may use for the proxy under test, the rest for the load generator and the stub.
    None on a single CPU or where affinity cannot be set (not Linux)."""
    if not pin or not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return ({cpus[-1]}, set(cpus[:-1])) if len(cpus) >= 2 else None


def gateway(
    upstream: Annotated[
        str | None, typer.Option(help="Measure this OpenAI server (base URL, no /v1) instead of the built-in stubs.")
    ] = None,
    stub: Annotated[
        list[str],
        typer.Option(help="Built-in upstreams to measure: instant, paced."),
    ] = ["instant", "paced"],  # noqa: B006 - typer reads the default, never mutates it
    ttft_ms: Annotated[float, typer.Option(help="The paced stub's time to first token (ms).")] = 25.0,
    tpot_ms: Annotated[float, typer.Option(help="The paced stub's time per output token after the first (ms).")] = 6.0,
    model: Annotated[str, typer.Option(help="Model name to send (the stubs accept any).")] = STUB_MODEL,
    concurrency: Annotated[
        list[int],
        typer.Option("--concurrency", "-c", help="Concurrency levels."),
    ] = [1, 8, 64],  # noqa: B006 - typer reads the default, never mutates it
    requests: Annotated[
        int,
        typer.Option(
            help=f"Requests per (mode, concurrency) and path; at least {MIN_WAVES}x the concurrency per round."
        ),
    ] = 400,
    rounds: Annotated[
        int, typer.Option(min=1, help="Rounds in which direct and proxied runs take turns (their times pooled).")
    ] = 3,
    max_tokens: Annotated[int, typer.Option(help="max_tokens per request (the stubs send this many tokens).")] = 16,
    out: Annotated[Path | None, typer.Option(dir_okay=False, help="Also write the rows as JSON here.")] = None,
    relay: Annotated[
        bool, typer.Option(help="Also measure a bare aiohttp relay: the cost of the extra hop alone.")
    ] = True,
    pin: Annotated[
        bool,
        typer.Option(
            help="Give the proxy under test a CPU of its own (the last), the load generator and stubs the rest, "
            "as in a deployment where they are not on one box."
        ),
    ] = True,
    poll_idle: Annotated[
        bool,
        typer.Option(
            help="Hold /dev/cpu_dma_latency at 0 while measuring, so waking an idle CPU is not counted as the "
            "proxy's cost (needs root)."
        ),
    ] = True,
    serve_stub: Annotated[int | None, typer.Option(hidden=True, help="Internal: serve a stub on this port.")] = None,
    serve_relay: Annotated[
        int | None, typer.Option(hidden=True, help="Internal: serve the bare relay on this port.")
    ] = None,
) -> None:
    """Gateway overhead: added time to first byte (p50/p99), throughput ratio and CPU per request, streaming and not."""
    port = serve_relay if serve_relay is not None else serve_stub
    if port is not None:
        import uvicorn

        app = stub_app(ttft_ms / 1e3, tpot_ms / 1e3) if serve_relay is None else relay_app(upstream or "")
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        return
    unknown = set(stub) - {"instant", "paced"}
    if unknown:
        raise typer.BadParameter(f"unknown stub(s) {sorted(unknown)}: use instant and/or paced", param_hint="--stub")
    console = Console(width=190)
    logs = Path(os.environ.get("TMPDIR", "/tmp")) / "june-bench-gateway"
    logs.mkdir(parents=True, exist_ok=True)
    targets: list[tuple[str, list[str] | None]] = []  # (label, stub argv or None for --upstream)
    if upstream is not None:
        targets.append((upstream, None))
    else:
        for kind in stub:
            timing = f"ttft_ms={ttft_ms}, tpot_ms={tpot_ms}" if kind == "paced" else "ttft_ms=0, tpot_ms=0"
            code = (
                "from benchmarks.perf.gateway import gateway; "
                f"gateway(serve_stub={{port}}, {timing}, concurrency=[1], stub=[])"
            )
            targets.append((kind, [sys.executable, "-c", code]))
    split = split_cpus(pin)
    proxy_cpus, other_cpus = split if split else (None, None)
    own_cpus = os.sched_getaffinity(0) if split else None
    rows: list[dict] = []
    with ExitStack() as stack:
        polling = stack.enter_context(idle_polling(poll_idle))
        if own_cpus:
            stack.callback(os.sched_setaffinity, 0, own_cpus)
        if other_cpus:
            os.sched_setaffinity(0, other_cpus)  # the load generator, and the stubs it starts
        for label, stub_argv in targets:
            rows += _measure_target(
                label,
                stub_argv,
                upstream,
                relay,
                proxy_cpus,
                logs,
                console,
                model=model,
                concurrencies=concurrency,
                requests=requests,
                max_tokens=max_tokens,
                rounds=rounds,
            )
    for row in rows:
        row["proxy_cpus"] = sorted(proxy_cpus) if proxy_cpus else None
        row["idle_polling"] = polling
    print_table(rows, console)
    where = (
        f"the proxies on CPU {sorted(split[0])}, load generator and stub on CPUs {sorted(split[1])}"
        if split
        else "everything on all CPUs (--no-pin)"
    )
    idle = (
        "idle CPUs polled (cpu_dma_latency held at 0)"
        if polling
        else f"idle CPUs free to halt ({'--no-poll-idle' if not poll_idle else 'cpu_dma_latency not writable'})"
    )
    console.print(f"layout: {where}; {idle}")
    if out is not None:
        out.write_text(json.dumps(rows, indent=2))


def _measure_target(
    label: str,
    stub_argv: list[str] | None,
    upstream: str | None,
    relay: bool,
    proxy_cpus: set[int] | None,
    logs: Path,
    console: Console,
    **measure_args: Any,
) -> list[dict]:
    """Start the stub (unless measuring `upstream`), the gateway and the bare relay, and measure them."""
    with ExitStack() as stack:
        url = upstream or ""
        if stub_argv is not None:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            argv = [*stub_argv[:-1], stub_argv[-1].format(port=port)]
            stack.enter_context(
                running(
                    argv, ready_url=f"{url}/health", log=logs / f"stub-{label}.log", timeout=60, name=f"{label} stub"
                )
            )
        port = free_port()
        env = {
            "JUNE_GATEWAY_HOST": "127.0.0.1", "JUNE_GATEWAY_PORT": str(port),
            "JUNE_GATEWAY_LLM_URL": url, "JUNE_GATEWAY_SPEECH_URL": url, "JUNE_GATEWAY_API_KEYS": "",
        }  # fmt: skip
        gw = f"http://127.0.0.1:{port}"
        proc = stack.enter_context(
            running(
                [sys.executable, "-m", "gateway"],
                ready_url=f"{gw}/health",
                env=env,
                log=logs / "gateway.log",
                timeout=60,
                name="gateway",
                cpus=proxy_cpus,
            )
        )
        through: dict[str, tuple[str, int | None]] = {"gateway": (gw, proc.pid)}
        if relay:
            port = free_port()
            code = (
                "from benchmarks.perf.gateway import gateway; "
                f"gateway(serve_relay={port}, upstream={url!r}, concurrency=[1], stub=[])"
            )
            relayed = stack.enter_context(
                running(
                    [sys.executable, "-c", code],
                    ready_url=f"http://127.0.0.1:{port}/health",
                    log=logs / "relay.log",
                    timeout=60,
                    name="relay",
                    cpus=proxy_cpus,
                )
            )
            through["relay"] = (f"http://127.0.0.1:{port}", relayed.pid)
        console.print(f"{label}: upstream {url}, gateway {gw} (logs in {logs})")
        return measure(url, through, api_key=None, upstream=label if stub_argv is not None else "given", **measure_args)
