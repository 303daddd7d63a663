"""Clients that no one here wrote, pointed at june's /v1/realtime by base URL and key, each completing a
turn that calls a function tool on the real stack (speech, vLLM on CPU, gateway): the official `openai`
SDK (raw events), the OpenAI Agents SDK (`RealtimeAgent` + `function_tool` + `RealtimeRunner`) and
LiveKit Agents' OpenAI Realtime plugin (`AgentSession` without a room). The `clients` dependency group
installs the two frameworks. docs/realtime-protocol.md says what each client sends and why each setting
below is there:
- tool_choice "required": Qwen2.5-Coder-0.5B never calls a tool under "auto" (it writes the call as JSON
  text, which vLLM's hermes parser does not see); "required" and a named function go through vLLM's
  guided decoding and always produce a call.
- turn_detection server_vad: the Agents SDK and LiveKit default to semantic_vad, which june runs as
  server_vad with its defaults (silence_duration_ms 500); 400 ms here keeps the turns short.
- the follow-up response (after the function output) is answered without tools: the Agents SDK sends a
  bare response.create, so a session choice of "required" is "none" for it (realtime_tools.response_choice).
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import anyio
import httpx
import pytest
from openai import AsyncOpenAI

from benchmarks.perf.realtime import clip_pcm, pcm_wav, stream_pcm
from tests.clips import espeak_wav

pytestmark = pytest.mark.slow  # the whole stack: speech, vLLM on CPU and the gateway (`gateway_url`)

QUESTION = "What is the weather in Paris right now?"
WEATHER = {"city": "Paris", "temperature_c": 17, "sky": "light rain"}
TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
INSTRUCTIONS = "You are June, a voice assistant. Answer in one or two short spoken sentences."
SERVER_VAD = {"type": "server_vad", "silence_duration_ms": 400}
TIMEOUT = 300  # s per turn on the shared 2-core machine


@pytest.fixture(scope="module")
def question_pcm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The question as pcm16 mono 24 kHz (espeak-ng, as tests/e2e/test_realtime.py makes its clips)."""
    return clip_pcm(espeak_wav(QUESTION, tmp_path_factory.mktemp("clips") / "q.wav"))


def heard(gateway_url: str, pcm: bytes) -> str:
    """What Whisper hears in a reply's audio."""
    response = httpx.post(
        f"{gateway_url}/v1/audio/transcriptions",
        files={"file": ("r.wav", pcm_wav(pcm), "audio/wav")},
        data={"model": "whisper-1", "language": "en"},
        timeout=TIMEOUT,
    )
    response.raise_for_status()
    return str(response.json()["text"])


def says_the_result(text: str) -> bool:
    """The answer carries the tool's result: its temperature or its sky, which only the tool's output had
    (the question names neither; which of the two the model says, and the words around it, are its own)."""
    text = text.lower()
    return "17" in text or "seventeen" in text or "rain" in text


# --- 1. the official openai SDK, raw events ------------------------------------------------------------


async def _until(conn: Any, kind: str, log: list[Any]) -> Any:
    async with asyncio.timeout(TIMEOUT):
        async for ev in conn:
            log.append(ev)
            assert ev.type != "error", ev.error
            if ev.type == kind:
                return ev
    raise AssertionError(f"closed before {kind}")


def test_openai_sdk_function_call_round_trip(gateway_url: str, question_pcm: bytes) -> None:
    async def run() -> tuple[list[Any], list[Any], bytes]:
        client = AsyncOpenAI(base_url=f"{gateway_url}/v1", api_key="unused")
        first: list[Any] = []
        second: list[Any] = []
        async with client.realtime.connect(model="june") as conn:
            await conn.session.update(
                session={  # type: ignore[arg-type]
                    "type": "realtime",
                    "instructions": INSTRUCTIONS,
                    "tools": [TOOL],
                    "tool_choice": "required",
                    "audio": {
                        "input": {
                            "transcription": {"model": "whisper-1", "language": "en"},
                            "turn_detection": SERVER_VAD,
                        }
                    },
                }
            )
            await stream_pcm(question_pcm, lambda b64: conn.input_audio_buffer.append(audio=b64), chunk_ms=40)
            done = await _until(conn, "response.done", first)
            call = next(i for i in done.response.output if i.type == "function_call")
            await conn.conversation.item.create(
                item={"type": "function_call_output", "call_id": call.call_id, "output": json.dumps(WEATHER)}
            )
            await conn.response.create()
            await _until(conn, "response.done", second)
        audio = b"".join(base64.b64decode(ev.delta) for ev in second if ev.type == "response.output_audio.delta")
        return first, second, audio

    first, second, audio = anyio.run(run)
    session = next(ev.session for ev in first if ev.type == "session.updated")
    assert [t.name for t in session.tools] == ["get_weather"] and session.tool_choice == "required"
    types = [ev.type for ev in first]
    for kind in (
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ):
        assert kind in types, (kind, types)
    assert "response.output_audio.delta" not in types  # nothing is spoken for the call itself
    args_done = next(ev for ev in first if ev.type == "response.function_call_arguments.done")
    assert args_done.name == "get_weather" and json.loads(args_done.arguments).get("city", "").lower() == "paris"
    deltas = "".join(ev.delta for ev in first if ev.type == "response.function_call_arguments.delta")
    assert deltas == args_done.arguments
    done = first[-1].response
    assert done.status == "completed" and done.usage is not None
    assert [i.type for i in done.output] == ["function_call"] and done.output[0].call_id == args_done.call_id
    assert says_the_result(heard(gateway_url, audio)), "the spoken answer does not carry the tool's result"
    assert second[-1].response.status == "completed"


# --- 2. the OpenAI Agents SDK: RealtimeAgent + function_tool + RealtimeRunner -------------------------


def test_agents_sdk_realtime_agent_calls_a_tool(gateway_url: str, question_pcm: bytes) -> None:
    from agents import function_tool
    from agents.realtime import RealtimeAgent, RealtimeRunner

    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        calls.append(city)
        return json.dumps({**WEATHER, "city": city})

    agent = RealtimeAgent(name="June", instructions=INSTRUCTIONS, tools=[get_weather])
    runner = RealtimeRunner(
        agent,
        config={
            "model_settings": {
                "model_name": "june-realtime",
                "voice": "alloy",
                "modalities": ["audio"],
                "tool_choice": "required",
                "input_audio_transcription": {"model": "whisper-1", "language": "en"},
                "turn_detection": SERVER_VAD,
            }
        },
    )
    ws_url = gateway_url.replace("http", "ws", 1) + "/v1/realtime?model=june-realtime"

    async def run() -> tuple[list[Any], bytes]:
        events: list[Any] = []
        audio = bytearray()
        session = await runner.run(model_config={"url": ws_url, "api_key": "unused"})
        async with session:

            async def speak() -> None:
                for i in range(0, len(question_pcm), 1920):  # 40 ms chunks at real-time pace
                    await session.send_audio(question_pcm[i : i + 1920])
                    await asyncio.sleep(0.04)

            speaker = asyncio.create_task(speak())
            async with asyncio.timeout(2 * TIMEOUT):
                async for ev in session:
                    events.append(ev)
                    if ev.type == "error":
                        raise AssertionError(ev.error)
                    if ev.type == "audio" and any(e.type == "tool_end" for e in events):
                        audio += ev.audio.data
                    if ev.type == "agent_end" and audio:  # the answer after the tool (the call's own response
                        break  # ends with an agent_end too, before the tool's output is answered)
            await speaker
        return events, bytes(audio)

    events, audio = anyio.run(run)
    assert calls and calls[0].lower() == "paris", calls
    tool_end = next(ev for ev in events if ev.type == "tool_end")
    assert tool_end.tool.name == "get_weather" and "17" in tool_end.output
    assert says_the_result(heard(gateway_url, audio))


# --- 3. LiveKit Agents' OpenAI Realtime plugin: AgentSession without a room (its test mode) ---------


def test_livekit_realtime_model_calls_a_tool(gateway_url: str) -> None:
    from livekit.agents import Agent, AgentSession, function_tool
    from livekit.plugins import openai as lk_openai
    from openai.types.realtime import AudioTranscription
    from openai.types.realtime.realtime_audio_input_turn_detection import ServerVad

    class June(Agent):
        def __init__(self) -> None:
            super().__init__(instructions=INSTRUCTIONS)

        @function_tool
        async def get_weather(self, city: str) -> str:
            """The current weather in a city."""
            return json.dumps({**WEATHER, "city": city})

    async def run() -> Any:
        model = lk_openai.realtime.RealtimeModel(
            base_url=f"{gateway_url}/v1",
            api_key="unused",
            model="june-realtime",
            modalities=["text"],
            tool_choice="required",
            turn_detection=ServerVad(type="server_vad", silence_duration_ms=400),
            input_audio_transcription=AudioTranscription(model="whisper-1", language="en"),
        )
        try:
            async with AgentSession(llm=model) as session:
                await session.start(June())
                return await session.run(user_input=QUESTION)
        finally:
            await model.aclose()  # outside a LiveKit job the model owns its aiohttp session

    result = anyio.run(run)
    result.expect.next_event().is_function_call(name="get_weather")
    result.expect.next_event().is_function_call_output()
    message = result.expect.next_event().is_message(role="assistant").event().item
    assert says_the_result(message.text_content or ""), message.text_content
