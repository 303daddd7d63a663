"""core.audio: encode and StreamEncoder → decode round trips per format, and AudioDecodeError on non-audio."""

from __future__ import annotations

import io
import struct

import av
import numpy as np
import pytest

from core.audio import CONTENT_TYPES, FORMATS, AudioDecodeError, AudioTooLong, StreamEncoder, decode, encode

RATE = 24000


def tone(freq: float = 440.0, seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * rate / len(samples))


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "pcm"])
def test_round_trip_keeps_length_and_pitch(fmt: str) -> None:
    data = encode(tone(), RATE, fmt)
    samples = decode(data, 16000)
    assert samples.dtype == np.float32 and samples.ndim == 1
    # Lossy codecs pad a little (encoder delay, AAC priming): allow 10 %.
    assert abs(len(samples) - 16000) < 1600, len(samples)
    assert abs(peak_hz(samples, 16000) - 440) < 5
    assert 0.3 < np.abs(samples).max() < 0.7


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "pcm"])
@pytest.mark.parametrize("n", [0, 1, 100])
def test_nothing_or_a_few_samples_still_make_a_playable_file(fmt: str, n: int) -> None:
    samples = decode(encode(np.zeros(n, dtype=np.float32), RATE, fmt), 16000)
    assert len(samples) >= 16000 // 50 - 1 and not np.abs(samples).max() > 0.01  # 20 ms of silence


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "m4a"])
def test_stream_pieces_form_one_file_like_encode(fmt: str) -> None:
    x = tone()
    encoder = StreamEncoder(fmt, RATE)
    data = b"".join([encoder.feed(x[:7000]), encoder.feed(x[:0]), encoder.feed(x[7000:]), encoder.close()])
    assert encoder.close() == b""
    if fmt == "pcm":
        assert data == encode(x, RATE, "pcm")
        return
    samples = decode(data, 16000)
    assert abs(len(samples) - len(decode(encode(x, RATE, fmt), 16000))) < 1600, len(samples)
    assert abs(peak_hz(samples, 16000) - 440) < 5


def test_m4a_and_unknown_formats_do_not_stream() -> None:
    for fmt in ("m4a", "ogg-vorbis-please"):
        with pytest.raises(ValueError, match="cannot stream"):
            StreamEncoder(fmt, RATE)


def test_decode_resamples_to_requested_rate() -> None:
    samples = decode(encode(tone(), RATE, "wav"), 8000)
    assert len(samples) == 8000
    assert abs(peak_hz(samples, 8000) - 440) < 2


def test_opus_is_ogg_opus_at_48k() -> None:
    data = encode(tone(), RATE, "opus")
    assert data.startswith(b"OggS") and b"OpusHead" in data[:100]
    with av.open(io.BytesIO(data)) as c:
        s = c.streams.audio[0]
        assert (c.format.name, s.codec_context.name, s.sample_rate) == ("ogg", "opus", 48000)
    assert CONTENT_TYPES["opus"] == "audio/ogg"


def test_pcm_is_raw_s16le_at_input_rate() -> None:
    x = np.array([0.0, 0.5, -0.5, 1.5], dtype=np.float32)
    data = encode(x, RATE, "pcm")
    assert np.frombuffer(data, "<i2").tolist() == [0, 16383, -16383, 32767]  # 1.5 is clipped
    assert CONTENT_TYPES["pcm"] == "audio/pcm"


def test_wav_header_and_content_types() -> None:
    data = encode(tone(), RATE, "wav")
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert {f: CONTENT_TYPES[f] for f in ("mp3", "wav", "flac")} == {
        "mp3": "audio/mpeg", "wav": "audio/wav", "flac": "audio/flac"
    }  # fmt: skip


def test_unknown_format_raises() -> None:
    with pytest.raises(ValueError, match="unknown audio format"):
        encode(tone(), RATE, "ogg-vorbis-please")


@pytest.mark.parametrize(
    "data", [b"", b"\x00" * 10, bytes(range(256)) * 40, b"RIFF\x00\x00WAVEfmt garbage", b'{"not": "audio"}']
)
def test_non_audio_raises_audio_decode_error(data: bytes) -> None:
    with pytest.raises(AudioDecodeError):
        decode(data)


def test_truncated_header_only_file_raises_or_is_short() -> None:
    # The first 60 bytes of an OGG/Opus file: headers without audio. Either an error or no samples.
    head = encode(tone(), RATE, "opus")[:60]
    try:
        assert len(decode(head)) == 0
    except AudioDecodeError:
        pass


def flac_with_declared_samples(samples: np.ndarray, rate: int, declared: int | None = None) -> bytes:
    """FLAC of int16 `samples` at `rate` Hz; `declared` overwrites STREAMINFO's total-samples field
    (36 bits at bytes 18-26: after "fLaC", the block header and 10 bytes of block/frame sizes)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="flac") as c:
        stream = c.add_stream("flac", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            c.mux(packet)
    data = bytearray(buf.getvalue())
    if declared is not None:
        field = int.from_bytes(data[18:26], "big")
        data[18:26] = ((field & ~((1 << 36) - 1)) | declared).to_bytes(8, "big")
    return bytes(data)


def wav_header_only(rate: int, data_bytes: int) -> bytes:
    """A PCM s16 mono WAV at `rate` Hz with `data_bytes` of silence."""
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, 2 * rate, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
        + b"\0" * data_bytes
    )


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(flac_with_declared_samples(np.zeros(3600, np.int16), 1), id="flac-1h-at-1Hz"),
        pytest.param(wav_header_only(1, 32_000), id="wav-4h-at-1Hz"),
        pytest.param(wav_header_only(8000, 16000 * 40), id="wav-40s-at-8kHz"),
        pytest.param(
            flac_with_declared_samples(np.zeros(8000, np.int16), 8000, declared=8000 * 7200), id="flac-declares-2h"
        ),
    ],
)
def test_audio_declaring_more_than_the_limit_is_refused_before_decoding(data: bytes) -> None:
    with pytest.raises(AudioTooLong, match="declares"):
        decode(data, 16000, max_seconds=30)


def test_audio_whose_header_understates_it_is_stopped_while_decoding() -> None:
    ten_s = (1000 * np.sin(np.arange(80_000) / 3)).astype(np.int16)
    lying = flac_with_declared_samples(ten_s, 8000, declared=8000)  # says 1 s, holds 10 s
    assert abs(len(decode(lying, 16000)) / 16000 - 10) < 0.1  # no limit: all of it
    with pytest.raises(AudioTooLong, match="decodes to more than"):
        decode(lying, 16000, max_seconds=5)
    assert abs(len(decode(lying, 16000, max_seconds=11)) / 16000 - 10) < 0.1
