"""Where june keeps what it builds from packages once (joined and converted models): one folder
shared by every service, like ~/.cache/huggingface."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/june/models`, or `~/.cache/june/models` when XDG_CACHE_HOME is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "june" / "models"
