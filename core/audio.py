"""Pure audio decode/encode with PyAV (FFmpeg): bytes in any common container ↔ float32 mono samples.

Samples are always numpy float32, mono, shape (n,), nominally in [-1, 1]. No state, no I/O besides
in-memory buffers, so every function is safe to call from worker threads.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction

import av
import av.filter
import numpy as np
from av.audio.resampler import AudioResampler

__all__ = [
    "CONTENT_TYPES", "FORMATS", "AudioDecodeError", "AudioTooLong", "StreamEncoder", "decode", "encode", "resample",
    "time_stretch",
]  # fmt: skip


class AudioDecodeError(ValueError):
    """The bytes are not audio that FFmpeg can decode (unknown container, no audio stream, corrupt)."""


class AudioTooLong(ValueError):
    """The audio lasts longer than allowed: declared so by the container, or found so while decoding.

    `seconds` is the declared duration, or how far decoding got when it stopped; `limit` the maximum.
    """

    def __init__(self, seconds: float, limit: float, *, declared: bool) -> None:
        how = "declares" if declared else "decodes to more than"
        super().__init__(f"the audio {how} {seconds:.0f} s; the limit is {limit:.0f} s")
        self.seconds, self.limit = seconds, limit


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


def _declared_seconds(container: av.container.InputContainer, stream: av.AudioStream) -> float | None:
    """The duration the container's headers state (or FFmpeg estimates from the bitrate), if any."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def decode(data: bytes, sample_rate: int = 16000, *, max_seconds: float | None = None) -> np.ndarray:
    """Decode the first audio stream of `data` (ogg/opus, wav, mp3, webm, m4a, flac, …) to mono.

    Returns float32 samples at `sample_rate` Hz, shape (n,); n may be 0 for an audio stream without
    samples. Raises AudioDecodeError when FFmpeg cannot open or decode the bytes, or finds no audio.
    With `max_seconds`, raises AudioTooLong before decoding when the container declares a longer
    duration, and as soon as the decoded frames pass it (headers can lie or be absent): a tiny file
    declaring hours at 1 Hz costs milliseconds, not gigabytes of resampled samples.
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
            declared = _declared_seconds(container, stream)
            if max_seconds is not None and declared is not None and declared > max_seconds:
                raise AudioTooLong(declared, max_seconds, declared=True)
            decoded = 0.0  # seconds of input decoded so far, from each frame's own rate
            for frame in container.decode(stream):
                decoded += frame.samples / (frame.sample_rate or sample_rate)
                if max_seconds is not None and decoded > max_seconds:
                    raise AudioTooLong(decoded, max_seconds, declared=False)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except (AudioDecodeError, AudioTooLong):
        raise
    except (av.FFmpegError, ValueError, EOFError, OSError, IndexError) as e:
        # FFmpeg's errors subclass FFmpegError (some also OSError/ValueError); be narrow but complete.
        raise AudioDecodeError(f"cannot decode audio: {e}") from e
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)


def _atempo_steps(factor: float) -> list[float]:
    """`factor` as a product of atempo factors within [0.5, 2] (older FFmpeg's range per instance)."""
    steps: list[float] = []
    while factor > 2.0:
        steps.append(2.0)
        factor /= 2.0
    while factor < 0.5:
        steps.append(0.5)
        factor /= 0.5
    return [*steps, factor]


def time_stretch(samples: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """Float32 mono `samples` played `factor` times faster (2.0: half as long) at the same pitch.

    FFmpeg's `atempo` filter (WSOLA) through PyAV's filter graph, chained for factors outside [0.5, 2].
    Returns float32, shape (m,), m ≈ n / factor. Raises ValueError for a factor that is not > 0.
    """
    if not factor > 0 or not np.isfinite(factor):
        raise ValueError(f"time-stretch factor must be a positive number, got {factor!r}")
    if factor == 1.0 or not len(samples):
        return samples
    graph = av.filter.Graph()
    nodes = [
        graph.add_abuffer(format="flt", sample_rate=sample_rate, layout="mono", time_base=Fraction(1, sample_rate))
    ]
    nodes += [graph.add("atempo", f"{step:.6f}") for step in _atempo_steps(factor)]
    nodes.append(graph.add("abuffersink"))
    graph.link_nodes(*nodes).configure()
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1), format="flt", layout="mono"
    )
    frame.sample_rate = sample_rate
    frame.pts = 0
    graph.push(frame)
    graph.push(None)
    out: list[np.ndarray] = []
    while True:
        try:
            out.append(graph.pull().to_ndarray().reshape(-1))
        except (av.BlockingIOError, av.EOFError):
            break
    return np.concatenate(out).astype(np.float32, copy=False) if out else np.zeros(0, np.float32)


def resample(samples: np.ndarray, sample_rate: int, rate: int) -> np.ndarray:
    """Float32 mono `samples` at `sample_rate` Hz converted to `rate` Hz (FFmpeg's swresample).

    Returns float32, shape (m,), m ≈ n * rate / sample_rate; the input itself when the rates match.
    Raises ValueError for a rate that is not a positive integer.
    """
    if sample_rate <= 0 or rate <= 0:
        raise ValueError(f"sample rates must be positive, got {sample_rate} and {rate}")
    if sample_rate == rate or not len(samples):
        return samples
    resampler = AudioResampler(format="flt", layout="mono", rate=rate)
    mono = np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(mono, format="flt", layout="mono")
    frame.sample_rate = sample_rate
    out = [f.to_ndarray().reshape(-1) for f in [*resampler.resample(frame), *resampler.resample(None)]]
    return np.concatenate(out).astype(np.float32, copy=False) if out else np.zeros(0, np.float32)


def from_pcm16(pcm: bytes) -> np.ndarray:
    """Raw pcm16 little-endian mono bytes (OpenAI's "pcm", the Realtime API's audio) as float32
    samples in [-1, 1), shape (n,). The inverse is `encode(samples, rate, "pcm")`."""
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


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
        stream = self._container.add_stream(spec.codec, rate=rate, layout="mono")
        if not isinstance(stream, av.AudioStream):  # PyAV types a codec named at run time as any kind of stream
            raise TypeError(f"{spec.codec} is not an audio codec")
        self._stream = stream
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
