"""Streaming voice activity detection for /v1/realtime: Silero VAD v6 (ONNX) over 24 kHz pcm16.

The model is the `silero_vad_v6.onnx` that faster-whisper ships in its `assets` folder (found
without importing faster-whisper, which would load CTranslate2); it runs with onnxruntime on one
thread. It runs here, in the gateway, because it looks at every 32 ms of every live session: a hop
to the speech service per frame would cost more than the inference (~0.1 ms a frame).

`SileroVAD` holds the shared model (one InferenceSession, thread-safe for `run`); each session gets
a `TurnDetector` with its own recurrent state, fed pcm16 at 24 kHz, resampled to the model's
16 kHz, and turned into OpenAI's server_vad events: speech started / stopped with audio times in ms.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

import numpy as np

from core.audio import from_pcm16
from gateway.realtime_events import INPUT_RATE, VadOptions

_MODEL_RATE = 16000
_FRAME = 512  # model samples per frame at 16 kHz = 32 ms
_CONTEXT = 64  # samples of the previous frame the v6 model sees before each frame
_FRAME_IN = _FRAME * INPUT_RATE // _MODEL_RATE  # 768 input samples per frame
FRAME_MS = _FRAME * 1000 // _MODEL_RATE
"""Milliseconds of audio per VAD decision (32)."""


def silero_model_path() -> Path:
    """Path of faster-whisper's bundled silero_vad_v6.onnx. Raises FileNotFoundError when absent."""
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "faster-whisper is not installed (it carries the Silero VAD model): install june[realtime]"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "silero_vad_v6.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"no Silero VAD model at {path}")
    return path


class SileroVAD:
    """The Silero VAD v6 model, loaded once and shared by every session (see module docstring)."""

    def __init__(self, path: Path | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1  # tiny model: more threads only add contention
        options.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            str(path or silero_model_path()), providers=["CPUExecutionProvider"], sess_options=options
        )

    def probabilities(
        self, frames: np.ndarray, state: np.ndarray, context: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Speech probability (0..1) for each row of `frames` (n × 512 float32 at 16 kHz), in order.

        `state` is the (2, 1, 1, 128) h/c pair and `context` the last 64 samples before the first
        frame; returns (probabilities, new state, new context).
        """
        probs = np.empty(len(frames), dtype=np.float32)
        h, c = state[0], state[1]
        for i, frame in enumerate(frames):
            x = np.concatenate([context, frame])[None, :]
            out, h, c = self._session.run(None, {"input": x, "h": h, "c": c})
            probs[i] = float(np.asarray(out).reshape(-1)[0])
            context = frame[-_CONTEXT:]
        return probs, np.stack([h, c]), context


Event = tuple[Literal["start", "stop", "pause", "resume"], int]
"""("start", audio_start_ms) or ("stop", audio_end_ms): ms since the session's first audio; with
`pause_ms`, also ("pause", ms) once a silence inside a turn reaches `pause_ms` and ("resume", ms)
when speech comes back before the turn ends."""


class TurnDetector:
    """One session's VAD: feed pcm16 24 kHz bytes, get start/stop events (see `Event`).

    A frame is speech at `threshold`; once speaking, it takes `silence_duration_ms` of frames under
    `threshold - 0.15` (Silero's usual hysteresis) to stop. Times count every sample fed so far,
    from `start_ms` (the session's audio time when the detector was made). With `pause_ms` (less
    than the silence duration), a silence that long inside a turn is reported as a pause first, so
    the turn can be transcribed while the detector waits to be sure it ended.
    """

    def __init__(
        self, model: SileroVAD, options: VadOptions, *, start_ms: int = 0, pause_ms: int | None = None
    ) -> None:
        self.model = model
        self.pause_ms = pause_ms
        self._paused = False
        self._start_ms = start_ms  # session audio time of the first sample fed
        self.options = options
        self._state = np.zeros((2, 1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)  # input samples not yet a whole frame
        self._frames_done = 0
        self.speaking = False
        self._silence_ms = 0

    def feed(self, pcm16: bytes) -> list[Event]:
        """Events caused by `pcm16` (little-endian int16 mono at 24 kHz, an even number of bytes).

        CPU work (~0.1 ms per 32 ms of audio): call it in a thread for long chunks.
        """
        samples = from_pcm16(pcm16)
        self._pending = np.concatenate([self._pending, samples])
        n = len(self._pending) // _FRAME_IN
        if n == 0:
            return []
        chunk, self._pending = self._pending[: n * _FRAME_IN], self._pending[n * _FRAME_IN :]
        # 24 → 16 kHz by linear interpolation: plenty for a speech/no-speech decision.
        positions = np.arange(n * _FRAME) * (INPUT_RATE / _MODEL_RATE)
        frames = np.interp(positions, np.arange(len(chunk)), chunk).astype(np.float32).reshape(n, _FRAME)
        probs, self._state, self._context = self.model.probabilities(frames, self._state, self._context)
        return self._decide(probs)

    def _decide(self, probs: np.ndarray) -> list[Event]:
        events: list[Event] = []
        opts = self.options
        for p in probs:
            self._frames_done += 1
            end_ms = self._start_ms + self._frames_done * FRAME_MS
            if not self.speaking:
                if p >= opts.threshold:
                    self.speaking, self._silence_ms = True, 0
                    events.append(("start", max(0, end_ms - FRAME_MS - opts.prefix_padding_ms)))
                continue
            if p < opts.threshold - 0.15:
                self._silence_ms += FRAME_MS
                if self._silence_ms >= opts.silence_duration_ms:
                    self.speaking, self._paused = False, False
                    events.append(("stop", end_ms))
                elif self.pause_ms is not None and not self._paused and self._silence_ms >= self.pause_ms:
                    self._paused = True
                    events.append(("pause", end_ms))
            else:
                self._silence_ms = 0
                if self._paused:
                    self._paused = False
                    events.append(("resume", end_ms))
        return events

    def reset(self) -> None:
        """Forget whether the user is speaking (after a manual commit or clear); times keep counting."""
        self.speaking, self._silence_ms, self._paused = False, 0, False
