"""A Dockerfile read as its stages, for the deploy tests (no Docker engine needed)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stage:
    """One `FROM base AS name` stage and its instructions (line continuations joined, comments dropped)."""

    name: str
    base: str
    lines: list[str] = field(default_factory=list)

    def healthcheck(self) -> str | None:
        """The stage's HEALTHCHECK instruction, if it has one."""
        return next((line for line in self.lines if line.startswith("HEALTHCHECK")), None)


def stages(path: Path) -> dict[str, Stage]:
    """The named stages of the Dockerfile at `path`, in order."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    found: dict[str, Stage] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if m := re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, re.IGNORECASE):
            current = found[m.group(2)] = Stage(m.group(2), m.group(1))
        elif current is not None and line and not line.startswith("#"):
            current.lines.append(line)
    return found
