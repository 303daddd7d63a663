"""`session`: the onnxruntime settings that june's ONNX speech models (Kokoro, Piper) share."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def session(model: str | Path, threads: int) -> Any:
    """An onnxruntime InferenceSession on the CPU for the ONNX file `model`, with `threads` intra-op
    threads (0: one per core) and no spinning worker threads (they only pay off on idle, dedicated
    cores; on a box shared with Whisper and the LLM they steal CPU). Raises onnxruntime's errors
    for a missing or invalid file."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
