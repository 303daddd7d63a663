"""The agent's tools: `bash` (in the sandbox), `editor` (view/create/str_replace in the task dir), `submit`.

`Tools.execute(name, arguments_json, timeout) -> observation text`; `submit` raises Submitted.
The editor runs on the host but only inside the task directory, through `Sandbox.read_bytes`,
`write` and `listdir`: paths never leave it, links are never followed (a symlink shows as `name@`),
FIFOs, devices and sockets are refused, and written files are handed to the sandbox user.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from benchmarks.sandbox import TASK_DIR, Sandbox, UnsafePath

MAX_OBSERVATION = 10_000
"""Characters of a tool's output shown to the model (head and tail kept)."""

SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "bash",
            "description": f"Run a bash command in {TASK_DIR} (no network; each call is a fresh shell). "
            "Returns exit code and output.",
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string", "description": "The command line."}},
                "required": ["command"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "editor",
            "description": "View a file (numbered lines) or directory, create/overwrite a file with file_text, "
            "or replace one unique occurrence of old_str with new_str.",
            "parameters": {
                "type": "object",
                "properties": {
                    "command": {"type": "string", "enum": ["view", "create", "str_replace"]},
                    "path": {"type": "string", "description": f"Relative to {TASK_DIR}, or absolute inside it."},
                    "file_text": {"type": "string", "description": "create: the whole new file."},
                    "old_str": {
                        "type": "string",
                        "description": "str_replace: exact text to replace (must occur once).",
                    },
                    "new_str": {"type": "string", "description": "str_replace: the replacement."},
                },
                "required": ["command", "path"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "submit",
            "description": "Finish: the work in the task directory is final and will be tested.",
            "parameters": {"type": "object", "properties": {}},
        },
    },
]


class Submitted(Exception):
    """The agent called `submit`."""


class ToolError(ValueError):
    """A tool call the agent got wrong; the message goes back to the model."""


def clip(text: str, limit: int = MAX_OBSERVATION) -> str:
    """`text` cut to `limit` characters, keeping its head and tail."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - limit} characters elided ...]\n{text[-half:]}"


class Tools:
    """Executes tool calls for one task against its sandbox, whose limits bound each bash command."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def execute(self, name: str, arguments: str, timeout: float) -> str:
        """Run one call; bad calls come back as an error text for the model, `submit` raises Submitted."""
        try:
            args = json.loads(arguments or "{}")
            if not isinstance(args, dict):
                raise ToolError("arguments must be a JSON object")
            if name == "bash":
                return self.bash(str(args.get("command", "")), timeout)
            if name == "editor":
                try:
                    return self.editor(**args)
                except UnicodeDecodeError:
                    raise ToolError(f"{args.get('path')} is not UTF-8 text; use bash to change it") from None
                except UnicodeEncodeError as e:  # e.g. a lone surrogate in file_text
                    raise ToolError(f"the text cannot be written as UTF-8 ({e.reason} at position {e.start})") from None
                except UnsafePath as e:
                    raise ToolError(str(e)) from None
                except (
                    OSError
                ) as e:  # e.g. create on a folder, a full task dir: the model's mistake, told without host paths
                    raise ToolError(f"{args.get('path')}: {e.strerror or type(e).__name__}") from None
            if name == "submit":
                raise Submitted()
            raise ToolError(f"unknown tool {name!r}; use bash, editor or submit")
        except json.JSONDecodeError as e:
            return f"error: arguments are not valid JSON ({e})"
        except (ToolError, TypeError) as e:
            return f"error: {e}"

    def bash(self, command: str, timeout: float) -> str:
        if not command.strip():
            raise ToolError("empty command")
        limits = replace(self.sandbox.limits, wall_s=max(min(self.sandbox.limits.wall_s, timeout), 1.0))
        result = self.sandbox.run(command, limits=limits)
        return clip(f"exit code: {result.returncode}\n{result.output}")

    def editor(
        self,
        command: str,
        path: str,
        file_text: str | None = None,
        old_str: str | None = None,
        new_str: str | None = None,
        **_: Any,
    ) -> str:
        """The editor on the host, through the sandbox's link-refusing file access (`Sandbox.read_bytes` etc.)."""
        if not isinstance(path, str):
            raise ToolError("path must be a string")
        kind = self.sandbox.kind(path)
        if command == "view":
            if kind == "dir":
                return "\n".join(self.sandbox.listdir(path)) or "(empty)"
            if kind == "missing":
                raise ToolError(f"{path} does not exist")
            lines = self._read(path).decode(errors="replace").splitlines()
            return clip("\n".join(f"{i:6}\t{line}" for i, line in enumerate(lines, 1)))
        if command == "create":
            if not isinstance(file_text, str):
                raise ToolError("create needs file_text")
            self._write(path, file_text)
            return f"wrote {len(file_text)} characters to {path}"
        if command == "str_replace":
            if not isinstance(old_str, str) or kind != "file":
                raise ToolError("str_replace needs an existing file and old_str")
            text = self._read(path).decode()
            count = text.count(old_str)
            if count != 1:
                raise ToolError(f"old_str occurs {count} times in {path}; it must occur exactly once")
            self._write(path, text.replace(old_str, new_str if isinstance(new_str, str) else ""))
            return f"replaced 1 occurrence in {path}"
        raise ToolError(f"unknown editor command {command!r}; use view, create or str_replace")

    def _read(self, path: str) -> bytes:
        return self.sandbox.read_bytes(path, max_bytes=self.sandbox.limits.file_mb << 20)

    def _write(self, path: str, text: str) -> None:
        """`Sandbox.write` with the size cap the sandbox puts on its own writes (RLIMIT_FSIZE)."""
        data = text.encode()  # a lone surrogate raises UnicodeEncodeError here, before anything is written
        if len(data) > self.sandbox.limits.file_mb << 20:
            raise ToolError("file too large")
        self.sandbox.write(path, data)
