"""`june smoke`: check a running june deployment end to end through its OpenAI-style API.

Checks, in order, each timed: models (GET /v1/models), chat (a short completion), stream (SSE
chunks up to `data: [DONE]`), tool call (`tool_choice: "required"`: small CPU models never call
tools under "auto"), speech (POST /v1/audio/speech → WAV) and transcription (that WAV back to text
with language=en; it must contain some of the spoken words). Prints a table; exits 1 when a check
fails, 0 otherwise. Needs only httpx, rich and typer, so any june image runs it:
`python -m june.smoke --base-url http://gateway:8000` (compose profile `smoke`, deploy/k8s/jobs).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import httpx
import typer
from rich.console import Console
from rich.table import Table

from core.served import NoServedModel, served_models
from core.sse import DONE, data_fields

SPOKEN = "The quick brown fox jumps."
WORDS = {"quick", "brown", "fox", "jumps"}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


class CheckFailed(Exception):
    """A check got an answer, but not the expected one; the message says what came back."""


@dataclass
class Check:
    """The outcome of one check: status, wall time in seconds, and a one-line detail."""

    name: str
    status: Literal["pass", "fail", "skip"]
    seconds: float
    detail: str


@dataclass
class _State:
    model: str | None = None
    wav: bytes | None = None


def run_checks(client: httpx.Client, model: str | None = None) -> list[Check]:
    """Run every check against `client` (base_url = the deployment, auth headers set).

    After a failure to connect at all, the remaining checks are skipped rather than failed again.
    """
    state = _State(model=model)
    steps: list[tuple[str, Callable[[httpx.Client, _State], str], str | None]] = [
        ("models", _models, None),
        ("chat", _chat, "model"),
        ("stream", _stream, "model"),
        ("tool call", _tool_call, "model"),
        ("speech", _speech, None),
        ("transcription", _transcription, "wav"),
    ]
    results: list[Check] = []
    unreachable: str | None = None
    for name, step, needs in steps:
        if unreachable:
            results.append(Check(name, "skip", 0.0, unreachable))
            continue
        if needs and getattr(state, needs) is None:
            results.append(Check(name, "skip", 0.0, f"no {needs} from an earlier check"))
            continue
        start = time.perf_counter()
        status: Literal["pass", "fail", "skip"]
        try:
            detail, status = step(client, state), "pass"
        except httpx.TransportError as e:
            detail, status = f"cannot reach {client.base_url}: {type(e).__name__}: {e}", "fail"
            if isinstance(e, (httpx.ConnectError, httpx.ConnectTimeout)):
                unreachable = "skipped: the deployment is unreachable"
        except httpx.HTTPStatusError as e:
            detail, status = f"HTTP {e.response.status_code}: {_error_message(e.response)}", "fail"
        except (CheckFailed, ValueError, KeyError, IndexError, TypeError) as e:
            detail, status = f"{type(e).__name__}: {e}" if not isinstance(e, CheckFailed) else str(e), "fail"
        results.append(Check(name, status, time.perf_counter() - start, detail))
    return results


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase


def _models(client: httpx.Client, state: _State) -> str:
    try:
        ids = served_models(client)
    except NoServedModel as e:
        raise CheckFailed(str(e)) from e  # none listed, or not a model list
    if state.model is None:
        state.model = ids[0]
    elif state.model not in ids:
        raise CheckFailed(f"model {state.model!r} is not among {ids}")
    return f"{len(ids)} model(s); using {state.model}"


def _chat_body(state: _State, **extra: Any) -> dict[str, Any]:
    return {
        "model": state.model,
        "messages": [{"role": "user", "content": "Say hello in five words."}],
        "max_tokens": 8,
        "temperature": 0,
        # vLLM: Qwen3's chat template skips <think> with this (others ignore it); a smoke check
        # tests the plumbing, and thinking would eat the small max_tokens.
        "chat_template_kwargs": {"enable_thinking": False},
        **extra,
    }


def _chat(client: httpx.Client, state: _State) -> str:
    r = client.post("/v1/chat/completions", json=_chat_body(state))
    r.raise_for_status()
    body = r.json()
    message = body["choices"][0]["message"]
    text = (message.get("content") or message.get("reasoning_content") or message.get("reasoning") or "").strip()
    if not text:
        raise CheckFailed(f"empty reply: {json.dumps(body)[:200]}")
    return f"{body.get('usage', {}).get('completion_tokens', '?')} tokens: {text[:60]!r}"


def _stream(client: httpx.Client, state: _State) -> str:
    start = time.perf_counter()
    first: float | None = None
    chunks, text, done = 0, "", False
    body = _chat_body(state, stream=True, stream_options={"include_usage": True})
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        if r.status_code >= 400:
            r.read()
            r.raise_for_status()
        for data in data_fields(r.iter_lines()):
            if data == DONE:
                done = True
                break
            chunk = json.loads(data)
            chunks += 1
            for choice in chunk.get("choices", []):
                delta = choice.get("delta", {})
                piece = delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning") or ""
                if piece and first is None:
                    first = time.perf_counter() - start
                text += piece
    if not done:
        raise CheckFailed(f"the stream ended without `data: [DONE]` after {chunks} chunks")
    if not text.strip():
        raise CheckFailed(f"{chunks} chunks but no text")
    return f"{chunks} chunks, first token after {first:.2f} s"


def _tool_call(client: httpx.Client, state: _State) -> str:
    body = _chat_body(state, tools=[WEATHER_TOOL], tool_choice="required", max_tokens=48)
    body["messages"] = [{"role": "user", "content": "Weather in Paris?"}]
    r = client.post("/v1/chat/completions", json=body)
    r.raise_for_status()
    calls = r.json()["choices"][0]["message"].get("tool_calls") or []
    if not calls:
        raise CheckFailed("no tool_calls in the reply (does the server run with --enable-auto-tool-choice?)")
    fn = calls[0]["function"]
    args = json.loads(fn["arguments"])
    if fn["name"] != "get_weather":
        raise CheckFailed(f"called {fn['name']!r}, not get_weather")
    return f"get_weather({json.dumps(args)})"


def _speech(client: httpx.Client, state: _State) -> str:
    r = client.post(
        "/v1/audio/speech", json={"model": "tts-1", "input": SPOKEN, "voice": "alloy", "response_format": "wav"}
    )
    r.raise_for_status()
    if not r.content.startswith(b"RIFF") or len(r.content) < 1000:
        raise CheckFailed(f"not a WAV file: {len(r.content)} bytes starting {r.content[:8]!r}")
    state.wav = r.content
    return f"{len(r.content) / 1024:.0f} KiB of WAV"


def _transcription(client: httpx.Client, state: _State) -> str:
    assert state.wav is not None
    files = {"file": ("smoke.wav", state.wav, "audio/wav")}
    r = client.post("/v1/audio/transcriptions", files=files, data={"model": "whisper-1", "language": "en"})
    r.raise_for_status()
    text = r.json()["text"]
    heard = WORDS & {w.strip(".,!?").lower() for w in text.split()}
    if len(heard) < len(WORDS) // 2:
        raise CheckFailed(f"heard {text!r} for {SPOKEN!r}")
    return repr(text.strip())[:70]


def report(results: list[Check], base_url: str, console: Console) -> bool:
    """Print the table and a summary line; True when no check failed."""
    table = Table(title=f"june smoke: {base_url}", title_justify="left")
    table.add_column("check")
    table.add_column("result")
    table.add_column("time", justify="right")
    table.add_column("detail", overflow="fold")
    style = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]", "skip": "[yellow]skip[/]"}
    for c in results:
        table.add_row(c.name, style[c.status], f"{c.seconds:.2f} s" if c.status != "skip" else "-", c.detail)
    console.print(table)
    failed = [c.name for c in results if c.status == "fail"]
    if failed:
        console.print(f"[bold red]{len(failed)} of {len(results)} checks failed:[/] {', '.join(failed)}")
    else:
        console.print(f"[bold green]all {len(results)} checks passed[/] in {sum(c.seconds for c in results):.1f} s")
    return not failed


def smoke(
    base_url: Annotated[
        str, typer.Option(envvar="JUNE_SMOKE_BASE_URL", help="The deployment's base URL (without /v1).")
    ] = "http://127.0.0.1:8000",
    key: Annotated[
        str | None, typer.Option(envvar="JUNE_SMOKE_KEY", help="API key (Bearer), if the gateway needs one.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Chat model to check [default: the first one /v1/models lists].")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds each request may take.")] = 120.0,
) -> None:
    """Check models, chat, streaming, a tool call, speech and transcription against a running deployment."""
    console = Console(highlight=False)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(
        base_url=base_url.rstrip("/"), headers=headers, timeout=httpx.Timeout(timeout, connect=10.0)
    ) as client:
        ok = report(run_checks(client, model), base_url, console)
    raise typer.Exit(0 if ok else 1)


if __name__ == "__main__":
    typer.run(smoke)
