"""Pure audio decode/encode with PyAV (FFmpeg): bytes in any common container ↔ float32 mono samples.

Samples are always numpy float32, mono, shape (n,), nominally in [-1, 1]. No state, no I/O besides
in-memory buffers, so every function is safe to call from worker threads.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np
from av.audio.resampler import AudioResampler

__all__ = ["CONTENT_TYPES", "FORMATS", "AudioDecodeError", "StreamEncoder", "decode", "encode"]


class AudioDecodeError(ValueError):
    """The bytes are not audio that FFmpeg can decode (unknown container, no audio stream, corrupt)."""


@dataclass(frozen=True)
class _Format:
    container: str  # FFmpeg muxer name
    codec: str  # FFmpeg encoder name
    sample_format: str  # FFmpeg sample format the encoder takes
    rate: int | None  # fixed output rate, or None for the input rate
    content_type: str


# Response formats we can write. "opus" is OGG/Opus at 48 kHz: what Telegram sendVoice and Discord
# voice messages accept, and what OpenAI returns for response_format="opus".
_FORMATS: dict[str, _Format] = {
    "opus": _Format("ogg", "libopus", "s16", 48000, "audio/ogg"),
    "mp3": _Format("mp3", "libmp3lame", "fltp", None, "audio/mpeg"),
    "wav": _Format("wav", "pcm_s16le", "s16", None, "audio/wav"),
    "flac": _Format("flac", "flac", "s16", None, "audio/flac"),
    "aac": _Format("adts", "aac", "fltp", None, "audio/aac"),
    "webm": _Format("webm", "libopus", "s16", 48000, "audio/webm"),
    "m4a": _Format("mp4", "aac", "fltp", None, "audio/mp4"),
}

FORMATS: tuple[str, ...] = (*_FORMATS, "pcm")
"""Every `fmt` that `encode` accepts."""

CONTENT_TYPES: dict[str, str] = {name: f.content_type for name, f in _FORMATS.items()} | {"pcm": "audio/pcm"}
"""HTTP Content-Type per `encode` format; "pcm" is raw signed 16-bit little-endian mono."""


def decode(data: bytes, sample_rate: int = 16000) -> np.ndarray:
    """Decode the first audio stream of `data` (ogg/opus, wav, mp3, webm, m4a, flac, …) to mono.

    Returns float32 samples at `sample_rate` Hz, shape (n,); n may be 0 for an audio stream without
    samples. Raises AudioDecodeError when FFmpeg cannot open or decode the bytes, or finds no audio.
    """
    if not data:
        raise AudioDecodeError("empty audio data")
    resampler = AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks: list[np.ndarray] = []
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise AudioDecodeError("no audio stream found")
            stream = container.streams.audio[0]
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except AudioDecodeError:
        raise
    except (av.FFmpegError, ValueError, EOFError, OSError, IndexError) as e:
        # FFmpeg's errors subclass FFmpegError (some also OSError/ValueError); be narrow but complete.
        raise AudioDecodeError(f"cannot decode audio: {e}") from e
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)


def _pcm16(samples: np.ndarray) -> np.ndarray:
    """Float `samples` (any shape, flattened) clipped to [-1, 1] as int16 little-endian, shape (n,)."""
    return (np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0) * 32767.0).astype("<i2")


class _Muxer:
    """One FFmpeg container of `spec` with one mono audio stream, written to `file`: what `encode` and
    `StreamEncoder` share.

    A seekable `file` (BytesIO) lets the muxer go back on `close` to fill in sizes and indexes (WAV
    sizes, FLAC STREAMINFO, the MP4 index); a `_Sink` makes it write streamable headers instead.
    `options` are FFmpeg muxer options. Not thread-safe.
    """

    def __init__(self, spec: _Format, sample_rate: int, file: object, options: dict[str, str] | None = None) -> None:
        self.sample_rate = sample_rate
        rate = spec.rate or sample_rate
        self._container = av.open(file, mode="w", format=spec.container, options=options or {})
        self._stream = self._container.add_stream(spec.codec, rate=rate, layout="mono")
        if spec.codec == "libopus":
            self._stream.bit_rate = 32000  # plenty for speech; Telegram voice notes use ~32 kb/s
        self._resampler = AudioResampler(format=spec.sample_format, layout="mono", rate=rate)

    def _mux(self, frames: list[av.AudioFrame]) -> None:
        for f in frames:
            self._container.mux(self._stream.encode(f))

    def write(self, pcm16: np.ndarray) -> None:
        """Encode int16 mono samples, shape (n,) with n > 0, at `sample_rate` Hz."""
        frame = av.AudioFrame.from_ndarray(pcm16.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        self._mux(self._resampler.resample(frame))

    def close(self) -> None:
        """Flush the resampler, the encoder and the muxer, and close the container (writes the trailer)."""
        self._mux(self._resampler.resample(None))
        self._container.mux(self._stream.encode(None))
        self._container.close()


def encode(samples: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """Encode float32 mono `samples` (shape (n,), at `sample_rate` Hz) as `fmt` (see FORMATS).

    "opus"/"webm" are resampled to 48 kHz (Opus' rate); "pcm" is raw s16le at `sample_rate` (OpenAI's
    pcm is 24 kHz, Kokoro's rate); the others keep `sample_rate`. Values outside [-1, 1] are
    clipped; input shorter than 20 ms (one Opus frame; empty included) is padded with silence to
    20 ms, so every format gives a playable file. Unlike `StreamEncoder`, the output is seekable, so
    headers carry the real sizes and "m4a" works.
    Raises ValueError for an unknown `fmt`.
    """
    pcm16 = _pcm16(samples)
    if fmt == "pcm":
        return pcm16.tobytes()
    spec = _FORMATS.get(fmt)
    if spec is None:
        raise ValueError(f"unknown audio format {fmt!r}; expected one of {', '.join(FORMATS)}")
    buf = io.BytesIO()
    muxer = _Muxer(spec, sample_rate, buf)
    shortest = sample_rate // 50  # 20 ms: less leaves an Opus encoder without a frame, and OGG without a page
    if len(pcm16) < shortest:
        pcm16 = np.concatenate([pcm16, np.zeros(shortest - len(pcm16), dtype="<i2")])
    muxer.write(pcm16)
    muxer.close()
    return buf.getvalue()


class _Sink:
    """A write-only file for FFmpeg: no `seek`, so muxers write streamable headers (e.g. WAV with
    unknown sizes, 0xFFFFFFFF, as OpenAI's streamed WAV) and never go back to patch them."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def write(self, data: bytes) -> int:
        self._buf += data
        return len(data)

    def drain(self) -> bytes:
        out = bytes(self._buf)
        self._buf.clear()
        return out


class StreamEncoder:
    """One continuous encoding of `fmt`, fed piece by piece (e.g. one sentence of speech at a time).

    `feed` returns the bytes the muxer has written so far and `close` the rest; concatenated they form
    one valid file (one MP3/ADTS frame stream, one OGG/Opus stream with its pages, one FLAC/WAV
    stream with streaming headers), so each piece can be sent as soon as it is encoded. The encoder
    keeps its state between pieces: no gaps, no extra headers, no priming delay per piece.
    Codec, rate and clipping are `encode`'s. "pcm" is raw s16le at `sample_rate`. Not thread-safe:
    feed one piece at a time.
    Raises ValueError for an unknown `fmt` or "m4a" (MP4 needs a seekable file for its index).
    """

    def __init__(self, fmt: str, sample_rate: int) -> None:
        self.fmt = fmt
        self.sample_rate = sample_rate
        self._closed = fmt == "pcm"
        if fmt == "pcm":
            return
        spec = _FORMATS.get(fmt)
        if spec is None or spec.container == "mp4":
            raise ValueError(f"cannot stream audio format {fmt!r}")
        self._sink = _Sink()
        # OGG holds packets up to 1 s per page by default; 20 ms pages let each piece out at once.
        options = {"page_duration": "20000"} if spec.container == "ogg" else None
        self._muxer = _Muxer(spec, sample_rate, self._sink, options)

    def feed(self, samples: np.ndarray) -> bytes:
        """Encode float32 mono `samples` (shape (n,), at `sample_rate`); returns the bytes ready now."""
        pcm16 = _pcm16(samples)
        if self.fmt == "pcm":
            return pcm16.tobytes()
        if len(pcm16):
            self._muxer.write(pcm16)
        return self._sink.drain()

    def close(self) -> bytes:
        """Flush the encoder and the muxer; returns the last bytes. Idempotent."""
        if self._closed:
            return b""
        self._closed = True
        self._muxer.close()
        return self._sink.drain()
