"""The whole stack, every part real on 127.0.0.1: speech, vLLM on CPU, gateway, VoicePipeline, `june voice`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest

from core.audio import decode, encode
from core.voice import VoicePipeline
from tests.clips import espeak_wav, wer

pytestmark = pytest.mark.slow  # the whole stack: vLLM through `gateway_url`

# Whisper base hears espeak-ng's "France" as "friends"; "Germany" it hears right.
QUESTION = "What is the capital of Germany?"


@pytest.fixture(scope="module")
def question_ogg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """QUESTION spoken by espeak-ng, as OGG/Opus like a Telegram voice message."""
    d = tmp_path_factory.mktemp("clips")
    wav = espeak_wav(QUESTION, d / "question.wav")
    ogg = d / "question.ogg"
    ogg.write_bytes(encode(decode(wav.read_bytes(), 16000), 16000, "opus"))
    return ogg


def test_voice_message_round_trip(gateway_url: str, question_ogg: Path) -> None:
    question = question_ogg.read_bytes()

    async def run():
        async with httpx.AsyncClient(timeout=300) as http:
            pipeline = VoicePipeline(http, base_url=gateway_url)
            result = await pipeline.run_voice(question, [])
            # What the user hears, transcribed again by the same stack.
            heard = await http.post(
                f"{gateway_url}/v1/audio/transcriptions",
                files={"file": ("reply.ogg", result.audio, "audio/ogg")},
                data={"model": "whisper-1", "language": "en"},  # the offline voices are Japanese ones
            )
            return result, heard

    result, heard = anyio.run(run)
    assert wer(QUESTION, result.transcript) <= 0.2, result.transcript
    assert result.reply.strip()
    assert "<think>" not in result.reply
    assert result.audio[:4] == b"OggS" and b"OpusHead" in result.audio[:200]
    assert decode(result.audio).size > 16000 * 0.3  # at least 0.3 s of sound
    assert heard.status_code == 200, heard.text
    assert wer(result.reply, heard.json()["text"]) <= 0.3, (result.reply, heard.json()["text"])
    assert result.timings.transcribe and result.timings.chat and result.timings.speak


def test_june_voice_command(gateway_url: str, question_ogg: Path, tmp_path: Path) -> None:
    out = tmp_path / "answer.ogg"
    done = subprocess.run(
        [sys.executable, "-m", "june", "voice", str(question_ogg), "-o", str(out), "--base-url", gateway_url],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "capital" in done.stdout.lower() and "germany" in done.stdout.lower(), done.stdout
    for stage in ("transcribe", "chat", "speak"):
        assert stage in done.stdout
    assert out.read_bytes()[:4] == b"OggS"


def test_june_voice_says_the_question_itself(gateway_url: str, tmp_path: Path) -> None:
    """`june voice --say`: june's own TTS speaks the question, so no recorder or espeak-ng is needed."""
    out = tmp_path / "answer.ogg"
    done = subprocess.run(
        [sys.executable, "-m", "june", "voice", "--say", QUESTION, "-o", str(out), "--base-url", gateway_url],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    heard = done.stdout.lower().split("you said:")[1].split("june:")[0]
    assert "capital" in heard and "germany" in heard, done.stdout
    assert out.read_bytes()[:4] == b"OggS"


def test_june_voice_needs_audio_or_say(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "june", "voice", "-o", str(tmp_path / "a.ogg")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--say" in done.stdout + done.stderr


def test_june_voice_reports_a_stack_that_is_down(question_ogg: Path, tmp_path: Path) -> None:
    from tests.conftest import free_port

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "june",
            "voice",
            str(question_ogg),
            "-o",
            str(tmp_path / "a.ogg"),
            "--base-url",
            f"http://127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "june voice:" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
