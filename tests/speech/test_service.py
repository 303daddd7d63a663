"""The real speech service (`python -m speech`, faster-whisper base/tiny.en + Kokoro ONNX) over HTTP,
driven by the official OpenAI SDK where it has a method, raw httpx otherwise.

Clips are spoken by espeak-ng (shipped in tests/data/clips); transcripts are scored by word error
rate. Tests of speech take `engine` (tests/speech/conftest.py) and run once per TTS engine, each
against a service with that engine; what they say is transcribed by the default service.
"""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from core.audio import decode, encode
from speech.engines import OPENAI_VOICES
from tests.clips import espeak_wav, normalize, wer
from tests.conftest import speech_log
from tests.speech.test_audio import flac_with_declared_samples, wav_header_only

SENTENCE = "Please turn on the kitchen lights before dinner."
SPOKEN = "Hello, this is a test of the speech service."
TWO_SENTENCES = "Good morning to you, my friend. Let us go for a walk."


@pytest.fixture(scope="module")
def clip_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return espeak_wav(SENTENCE, tmp_path_factory.mktemp("clips") / "clip.wav").read_bytes()


@pytest.fixture(scope="module")
def http(speech_url: str):
    with httpx.Client(base_url=speech_url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def client(speech_url: str):
    with httpx.Client(timeout=120) as http_client:
        yield openai.OpenAI(base_url=speech_url + "/v1", api_key="x", http_client=http_client, max_retries=0)


def transcribe(http: httpx.Client, data: bytes, name: str, **fields: str) -> httpx.Response:
    return http.post("/transcribe", files={"file": (name, data)}, data=fields)


def assert_same_speech(engine: str, a: bytes, b: bytes) -> None:
    """The same text spoken twice: Kokoro gives the same bytes; Piper samples its phoneme durations on
    every call, so the same length within 15 % (a word more or less is 20 % or more of these clips)."""
    if engine == "kokoro":
        assert a == b
    else:
        assert abs(len(a) - len(b)) <= 0.15 * max(len(a), len(b)), (len(a), len(b))


def assert_openai_error(r: httpx.Response, status: int, param: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if param is not None:
        assert err["param"] == param, err
    return err


@pytest.mark.parametrize("fmt", ["wav", "opus"])
def test_espeak_clip_transcribes(http: httpx.Client, clip_wav: bytes, fmt: str) -> None:
    data = clip_wav if fmt == "wav" else encode(decode(clip_wav, 24000), 24000, "opus")
    r = transcribe(http, data, f"clip.{'ogg' if fmt == 'opus' else 'wav'}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert wer(SENTENCE, body["text"]) <= 0.2, body
    assert body["language"] == "en"
    assert 1.5 < body["duration"] < 6.0


def test_every_response_format_through_the_sdk(client: openai.OpenAI, clip_wav: bytes) -> None:
    file = ("clip.wav", clip_wav)
    t = client.audio.transcriptions.create(model="whisper-1", file=file, language="en", response_format="json")
    assert wer(SENTENCE, t.text) <= 0.2, t.text
    text = client.audio.transcriptions.create(model="whisper-1", file=file, language="en", response_format="text")
    assert wer(SENTENCE, text) <= 0.2, text
    srt = client.audio.transcriptions.create(model="whisper-1", file=file, language="en", response_format="srt")
    assert re.match(r"1\n00:00:\d\d,\d{3} --> 00:00:\d\d,\d{3}\n\S", srt), srt
    vtt = client.audio.transcriptions.create(model="whisper-1", file=file, language="en", response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n") and re.search(r"00:00:\d\d\.\d{3} --> ", vtt), vtt
    v = client.audio.transcriptions.create(model="whisper-1", file=file, language="en", response_format="verbose_json")
    assert v.language == "en" and 1.5 < v.duration < 6 and v.segments and v.words is None
    s = v.segments[0]
    assert s.id == 0 and 0 <= s.start < s.end and s.tokens and s.avg_logprob < 0 and 0 <= s.no_speech_prob < 0.5


def test_word_timestamps(client: openai.OpenAI, clip_wav: bytes) -> None:
    v = client.audio.transcriptions.create(
        model="whisper-1",
        file=("clip.wav", clip_wav),
        language="en",
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert v.words and v.segments
    words = [w.word.strip(".,").lower() for w in v.words]
    assert "kitchen" in words and "lights" in words, words
    starts = [w.start for w in v.words]
    assert starts == sorted(starts) and all(w.end >= w.start for w in v.words)
    assert v.words[-1].end <= v.duration + 0.1


def test_model_selection_and_listing(client: openai.OpenAI, http: httpx.Client, clip_wav: bytes) -> None:
    t = client.audio.transcriptions.create(model="tiny.en", file=("clip.wav", clip_wav))
    assert wer(SENTENCE, t.text) <= 0.3, t.text
    listed = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    assert {"base", "tiny.en", "piper"} <= set(listed)
    assert listed["tiny.en"]["loaded"] and listed["base"]["default"]
    err = assert_openai_error(transcribe(http, clip_wav, "clip.wav", model="whisper-large-v9"), 400, "model")
    assert "whisper-large-v9" in err["message"]


def test_streamed_transcription_events(client: openai.OpenAI, clip_wav: bytes) -> None:
    # Two clips back to back with a pause: VAD keeps both, Whisper returns them as they decode.
    samples = decode(clip_wav, 16000)
    joined = np.concatenate([samples, np.zeros(16000, np.float32), samples])
    stream = client.audio.transcriptions.create(
        model="whisper-1", file=("two.wav", encode(joined, 16000, "wav")), language="en", stream=True
    )
    events = list(stream)
    assert [e.type for e in events[:-1]] == ["transcript.text.delta"] * (len(events) - 1) and len(events) >= 2
    assert events[-1].type == "transcript.text.done"
    deltas = "".join(e.delta for e in events[:-1])
    assert deltas == events[-1].text
    assert wer(f"{SENTENCE} {SENTENCE}", events[-1].text) <= 0.2, events[-1].text


@pytest.mark.parametrize("said_twice", ["Turn on the lights. Turn on the lights.", "I said no. I said no."])
def test_a_sentence_said_twice_is_transcribed_twice(client: openai.OpenAI, tmp_path: Path, said_twice: str) -> None:
    """The hallucination guard drops Whisper's repetition loops, not a user who repeats themselves.

    The property is "heard twice", not Whisper's exact words: int8 Whisper hears a word differently
    on different CPUs ("lights" / "light"), but it hears it the same way both times on one CPU. So the
    transcript must hold two halves that match each other, each recognisably the sentence said.
    """
    clip = espeak_wav(said_twice, tmp_path / "twice.wav").read_bytes()
    v = client.audio.transcriptions.create(
        model="whisper-1", file=("twice.wav", clip), language="en", response_format="verbose_json"
    )
    once = normalize(said_twice).split()[: len(normalize(said_twice).split()) // 2]
    heard = normalize(v.text).split()
    assert len(heard) >= 1.5 * len(once), v.text  # a dropped repeat leaves one sentence
    first, second = " ".join(heard[: len(heard) // 2]), " ".join(heard[len(heard) // 2 :])
    assert wer(first, second) <= 0.25, v.text  # the same sentence twice, however it was heard
    assert wer(" ".join(once), first) <= 0.5, v.text  # and that sentence is the one said


def test_translation_to_english(client: openai.OpenAI, tmp_path: Path) -> None:
    spanish = espeak_wav("Buenos días. ¿Cómo estás hoy?", tmp_path / "es.wav", voice="es").read_bytes()
    t = client.audio.translations.create(model="whisper-1", file=("es.wav", spanish), response_format="verbose_json")
    assert t.language == "es"
    assert "morning" in t.text.lower(), t.text
    with pytest.raises(openai.BadRequestError) as e:  # English-only model cannot translate
        client.audio.translations.create(model="tiny.en", file=("es.wav", spanish))
    assert e.value.body["param"] == "model"  # type: ignore[index]


@pytest.mark.parametrize("kind", ["silence", "noise"])
def test_silence_and_noise_give_empty_text(client: openai.OpenAI, kind: str) -> None:
    rng = np.random.default_rng(7)
    silence = np.zeros(5 * 16000, np.float32)
    samples = silence if kind == "silence" else (0.15 * rng.standard_normal(5 * 16000)).astype(np.float32)
    for model in ("whisper-1", "tiny.en"):
        v = client.audio.transcriptions.create(
            model=model, file=(f"{kind}.wav", encode(samples, 16000, "wav")), response_format="verbose_json"
        )
        assert v.text == "" and not v.segments, (model, v.text)


@pytest.mark.parametrize(("fmt", "content_type"), [("opus", "audio/ogg"), ("wav", "audio/wav")])
def test_speak_then_transcribe_round_trip(
    tts_http: httpx.Client, http: httpx.Client, fmt: str, content_type: str
) -> None:
    """What either engine says with its default voice, Whisper hears as English by itself (no
    `language` given) and transcribes back."""
    r = tts_http.post("/speak", json={"input": SPOKEN, "response_format": fmt})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == content_type
    if fmt == "opus":
        assert r.content.startswith(b"OggS") and b"OpusHead" in r.content[:100]
    else:
        assert r.content[:4] == b"RIFF"
    t = transcribe(http, r.content, f"speech.{fmt}", response_format="verbose_json")
    assert t.status_code == 200, t.text
    body = t.json()
    assert body["language"] == "en", body
    assert wer(SPOKEN, body["text"]) <= 0.2, body
    assert body["segments"] and body["duration"] > 1.0


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_every_speech_format_streams_in_sentence_chunks(tts_url: str, fmt: str) -> None:
    """The reply arrives in several chunks (one per sentence) that join into one decodable file; pcm
    is at 24 kHz whatever the engine's own rate."""
    chunks: list[bytes] = []
    with (
        httpx.Client(timeout=120) as h,
        h.stream(
            "POST",
            f"{tts_url}/v1/audio/speech",
            json={"input": TWO_SENTENCES, "voice": "alloy", "response_format": fmt},
        ) as r,
    ):
        assert r.status_code == 200
        assert "content-length" not in r.headers  # chunked: sent while later sentences synthesize
        chunks = [c for c in r.iter_raw() if c]
    assert len(chunks) >= 2, [len(c) for c in chunks]
    data = b"".join(chunks)
    if fmt == "pcm":
        seconds = len(data) / 2 / 24000
    elif fmt == "wav":  # the header says the rate: 24 kHz, as pcm
        assert data[:4] == b"RIFF" and int.from_bytes(data[24:28], "little") == 24000
        seconds = len(decode(data, 16000)) / 16000
    else:
        seconds = len(decode(data, 16000)) / 16000
    assert 2.0 < seconds < 10.0, seconds


def test_speech_sse_events(tts_client: openai.OpenAI, client: openai.OpenAI, engine: str) -> None:
    voice = "jm_kumo(2)+jf_gongitsune(1)" if engine == "kokoro" else "echo"  # a mix where the engine mixes
    with tts_client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice=voice, input=TWO_SENTENCES, response_format="mp3", stream_format="sse",
    ) as r:  # fmt: skip
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[len("data: ") :]) for line in r.iter_lines() if line.startswith("data: ")]
    assert [e["type"] for e in events] == ["core.audio.delta"] * (len(events) - 1) + ["core.audio.done"]
    assert len(events) >= 3 and events[-1]["usage"]["input_tokens"] == len(TWO_SENTENCES)
    mp3 = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    t = client.audio.transcriptions.create(model="whisper-1", file=("mix.mp3", mp3), language="en")
    assert wer(TWO_SENTENCES, t.text) <= 0.25, t.text


def test_priority_tier_speaks_the_same_and_a_bad_tier_is_a_400(tts_http: httpx.Client, engine: str) -> None:
    body = {"input": "Good morning, how are you?", "voice": "alloy", "response_format": "pcm"}
    pcm = {t: tts_http.post("/v1/audio/speech", json={**body, "service_tier": t}) for t in ("auto", "priority")}
    assert all(r.status_code == 200 for r in pcm.values())
    a, b = (np.frombuffer(r.content, "<i2").astype(np.float32) for r in pcm.values())
    assert len(a) > 24000
    if engine == "kokoro":  # deterministic: one model, more threads
        assert len(a) == len(b) and np.corrcoef(a, b)[0, 1] > 0.99
    else:
        assert_same_speech(engine, a.tobytes(), b.tobytes())
    err = tts_http.post("/v1/audio/speech", json={**body, "service_tier": "fastest"})
    assert_openai_error(err, 400, "service_tier")


def test_mixed_voice_differs_from_its_parts(speech_services) -> None:
    with httpx.Client(base_url=speech_services("kokoro"), timeout=120) as http:

        def pcm(voice: str) -> np.ndarray:
            body = {"input": "Good morning.", "voice": voice, "response_format": "pcm"}
            return np.frombuffer(http.post("/v1/audio/speech", json=body).content, "<i2").astype(np.float32)

        a, b, mix = pcm("jf_alpha"), pcm("jm_kumo"), pcm("jf_alpha(1)+jm_kumo(1)")
    assert len(mix) > 12000
    assert not np.array_equal(mix[: len(a)], a[: len(mix)]) and not np.array_equal(mix[: len(b)], b[: len(mix)])


def test_an_engine_that_cannot_mix_refuses_a_mix_naming_voice(http: httpx.Client) -> None:
    """Piper voices cannot be blended: a mix is a 400 that says so, even of one voice with itself."""
    for voice in ("en_US-joe-medium(2)+en_US-joe-medium(1)", "alloy+echo"):
        r = http.post("/v1/audio/speech", json={"input": "Hi there.", "voice": voice})
        err = assert_openai_error(r, 400, "voice")
        assert "piper" in err["message"] and "mix" in err["message"].lower(), err
    assert http.post("/v1/audio/speech", json={"input": "Hi there.", "voice": "en_US-joe-medium(2)"}).status_code == 200


def test_markdown_and_emoji_are_not_read_aloud(tts_client: openai.OpenAI, engine: str) -> None:
    """Markdown reply and its plain words give the same audio; reading the markup would add seconds."""

    def pcm(text: str) -> bytes:
        return tts_client.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format="pcm").read()

    md = "## Done 🎉\n\n**Lights** are on. See [the docs](https://example.com/docs) 👍"
    plain = "Done\nLights are on. See the docs"
    spoken = pcm(md)
    assert_same_speech(engine, spoken, pcm(plain))
    # What reading the markup would sound like (Piper samples durations per call: keep the gap wide).
    read_out = "Hash hash done. Star star lights star star are on. See open bracket the docs close bracket."
    assert len(spoken) < 0.85 * len(pcm(read_out))


def test_voices_list(tts_http: httpx.Client, engine: str) -> None:
    """Installed voices with their engine and language; every OpenAI voice name maps to one of them."""
    body = tts_http.get("/v1/audio/voices").json()
    installed = {v["id"]: v for v in body["data"]}
    expected = {"piper": {"en_US-joe-medium"}, "kokoro": {"jf_alpha", "jm_kumo"}}[engine]
    assert set(installed) >= expected
    assert {v["engine"] for v in installed.values()} == {engine} == {body["engine"]}
    assert all(v["language"] == "en-US" for v in installed.values()), installed
    assert set(body["aliases"]) >= set(OPENAI_VOICES) and set(body["aliases"].values()) <= set(installed)
    assert body["default"] in installed and body["mixes"] == (engine == "kokoro")
    for name in (body["default"], body["default"].upper(), "marin", "Cedar"):
        r = tts_http.post("/v1/audio/speech", json={"input": "Hi.", "voice": name, "response_format": "wav"})
        assert r.status_code == 200, (name, r.text)


def test_bad_inputs_get_openai_errors_and_service_stays_up(http: httpx.Client, clip_wav: bytes) -> None:
    err = assert_openai_error(transcribe(http, bytes(range(256)) * 64, "x.ogg"), 415, "file")
    assert err["code"] == "unsupported_audio_format"
    assert_openai_error(transcribe(http, b"", "empty.wav"), 400, "file")
    assert_openai_error(http.post("/v1/audio/transcriptions", data={"model": "whisper-1"}), 400, "file")
    assert_openai_error(transcribe(http, clip_wav, "c.wav", response_format="xml"), 400, "response_format")
    assert_openai_error(transcribe(http, clip_wav, "c.wav", temperature="hot"), 400, "temperature")
    assert_openai_error(transcribe(http, clip_wav, "c.wav", language="xx"), 400, "language")
    r = http.post(
        "/v1/audio/transcriptions",
        files={"file": ("c.wav", clip_wav)},
        data={"timestamp_granularities[]": "word"},  # words need verbose_json, as OpenAI
    )
    assert_openai_error(r, 400, "timestamp_granularities")
    assert http.get("/health").status_code == 200


def test_bad_speech_inputs_get_openai_errors_and_service_stays_up(tts_http: httpx.Client) -> None:
    http = tts_http
    assert_openai_error(http.post("/speak", json={"input": ""}), 400, "input")
    assert_openai_error(http.post("/speak", json={"input": "   "}), 400, "input")
    assert_openai_error(http.post("/speak", json={"input": "🎉 🚀"}), 400, "input")
    assert_openai_error(http.post("/speak", json={"input": "x" * 4097}), 400, "input")
    err = assert_openai_error(http.post("/v1/audio/speech", json={"input": "hi", "voice": "nobody"}), 400, "voice")
    assert "nobody" in err["message"]
    assert_openai_error(http.post("/v1/audio/speech", json={"input": "hi", "voice": "alloy(2)+x(1)"}), 400, "voice")
    assert_openai_error(http.post("/speak", json={"input": "hi", "response_format": "ogg"}), 400, "response_format")
    assert_openai_error(http.post("/speak", json={"input": "hi", "speed": 4.5}), 400, "speed")
    assert_openai_error(http.post("/speak", json={"input": "hi", "speed": 0.1}), 400, "speed")
    assert_openai_error(http.post("/speak", json={"input": "hi", "stream_format": "ws"}), 400, "stream_format")
    assert_openai_error(http.post("/speak", content=b"{not json", headers={"content-type": "application/json"}), 400)
    assert http.get("/health").status_code == 200


def test_upload_over_limit_is_413(http: httpx.Client) -> None:
    big = b"\0" * (25 * 1024 * 1024 + 10)
    r = transcribe(http, big, "big.wav")
    assert r.status_code == 413, r.text[:300]
    assert r.json()["error"]["message"]
    assert http.get("/health").status_code == 200


def test_ready_and_metrics(http: httpx.Client, clip_wav: bytes) -> None:
    assert http.get("/ready").json()["status"] == "ready"
    assert transcribe(http, clip_wav, "c.wav").status_code == 200
    text = http.get("/metrics").text
    for name in (
        'june_speech_audio_seconds_total{kind="stt",model="base"}',
        "june_speech_real_time_factor_bucket",
        "june_speech_model_call_seconds_count",
        "june_speech_queue_depth",
        '_requests_total{app_name="speech"',  # per-request metrics of core.observability
    ):
        assert name in text, name


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(flac_with_declared_samples(np.zeros(3600, np.int16), 1), id="flac-1h-at-1Hz"),
        pytest.param(wav_header_only(1, 32_000), id="wav-4h-at-1Hz"),
    ],
)
def test_audio_longer_than_the_limit_is_refused_naming_file(http: httpx.Client, data: bytes) -> None:
    """Tiny files declaring hours (they used to decode to gigabytes) are refused from their headers."""
    err = assert_openai_error(transcribe(http, data, "long.audio"), 400, "file")
    assert err["code"] == "audio_too_long" and "1500 s" in err["message"], err


def test_speed_over_the_documented_range_changes_the_duration(tts_client: openai.OpenAI) -> None:
    """0.25-4 as documented: the engine speaks 0.5-2 itself, FFmpeg's atempo stretches the rest."""

    def seconds(speed: float) -> float:
        pcm = tts_client.audio.speech.create(
            model="tts-1", voice="alloy", input="Good morning, my friend.", response_format="pcm", speed=speed
        ).read()
        return len(pcm) / 2 / 24000

    normal = seconds(1.0)
    for speed in (0.25, 4.0):
        ratio = normal / seconds(speed)
        assert abs(ratio / speed - 1) < 0.25, (speed, ratio)


def test_speech_streams_cancelled_mid_way_are_cleaned_up(tts_url: str, engine: str, logs_dir: Path) -> None:
    """A client leaving after the first chunk, or before it, frees the slot and the encoder in order:
    no "Task exception was never retrieved … graph is unallocated" from a garbage-collected stream."""
    body = {"input": "First sentence is here. Then comes the second one. And a third one, at last.", "voice": "alloy"}
    with httpx.Client(base_url=tts_url, timeout=120) as http:
        for fmt in ("mp3", "opus"):
            with http.stream("POST", "/v1/audio/speech", json={**body, "response_format": fmt}) as r:
                assert r.status_code == 200 and next(r.iter_raw())
            with pytest.raises(httpx.ReadTimeout), httpx.Client(base_url=tts_url, timeout=0.05) as impatient:
                impatient.post("/v1/audio/speech", json={**body, "response_format": fmt, "stream_format": "sse"})
        for _ in range(240):  # the last one stops after the sentence in progress
            if re.search(r"^june_speech_queue_depth 0\.0$", http.get("/metrics").text, re.M):
                break
            time.sleep(0.5)
        else:
            pytest.fail("the cancelled streams still hold their queue places")
        assert http.post("/v1/audio/speech", json={"input": "Still here.", "response_format": "wav"}).status_code == 200
    log = logs_dir / speech_log(engine)
    if log.exists():  # absent when JUNE_TEST_SPEECH_URL names another service
        text = log.read_text(errors="replace")
        assert "never retrieved" not in text and "unallocated" not in text, text[-3000:]


def test_first_clause_is_streamed_on_its_own(tts_client: openai.OpenAI, client: openai.OpenAI, engine: str) -> None:
    """The first audio event holds the reply's first clause ("Sure,"), not the whole first
    sentence: synthesis time grows with audio length, so the first byte comes sooner. All the words
    are still spoken."""
    reply = "Sure, I can help with that. The kitchen lights are on now."
    with tts_client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=reply, response_format="pcm", stream_format="sse"
    ) as r:
        events = [json.loads(line[len("data: ") :]) for line in r.iter_lines() if line.startswith("data: ")]
    chunks = [base64.b64decode(e["audio"]) for e in events[:-1]]

    def pcm(text: str) -> bytes:
        return tts_client.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format="pcm").read()

    sentence, clause = pcm("Sure, I can help with that."), pcm("Sure,")
    assert len(chunks) == 3, [len(c) for c in chunks]
    assert len(chunks[0]) < 0.6 * len(sentence), (len(chunks[0]), len(sentence))
    assert_same_speech(engine, chunks[0], clause)
    wav = encode(np.frombuffer(b"".join(chunks), "<i2").astype(np.float32) / 32768, 24000, "wav")
    t = client.audio.transcriptions.create(model="whisper-1", file=("reply.wav", wav), language="en")
    assert wer(reply, t.text) <= 0.2, t.text
