"""The voice stages' errors: `VoiceError` carries the stage, the HTTP status, the Retry-After and
a reason a caller can act on as data; `status_error` / `transport_error` make one from an `openai`
SDK error (`core.voice_client` raises nothing else for upstream trouble).

Reasons: "busy" (429, or 503: refused before any work), "undecodable" / "audio_too_big" (the
transcription route refused the file with 400/413/415/422: sending it again would not help),
"empty" (a transcript with no words), else "failed". What a person is told is the caller's:
`bots.apologies` for the bots, the realtime session's error events.
"""

from __future__ import annotations

from typing import Literal, Protocol

import httpx
import openai

from core.busy import retry_after

__all__ = ["BUSY_STATUSES", "EmptyTranscript", "Reason", "Stage", "VoiceError", "status_error", "transport_error"]

Stage = Literal["transcribe", "chat", "speak"]
Reason = Literal["busy", "undecodable", "audio_too_big", "empty", "failed"]

BUSY_STATUSES = frozenset({429, 503})
"""Statuses of an upstream that refused the request before doing any work."""


class VoiceError(Exception):
    """A stage failed: the upstream answered an error status, timed out, was unreachable or sent junk.

    `stage` names the step ("transcribe", "chat", "speak"); `status` is the HTTP status the upstream
    answered (None for a transport failure or a broken body) and `retry_after` the seconds its
    ``Retry-After`` asked for (None without one); `reason` says what went wrong in terms a caller
    can act on (see the module docstring). `str(error)` carries the detail for logs (URL paths and
    upstream bodies: never shown to people).
    """

    def __init__(
        self,
        stage: Stage,
        detail: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        reason: Reason = "failed",
    ) -> None:
        super().__init__(f"{stage}: {detail}")
        self.stage: Stage = stage
        self.detail = detail
        self.status = status
        self.retry_after = retry_after
        self.reason: Reason = reason


class EmptyTranscript(VoiceError):
    """The recording held no recognisable speech (the transcript was empty or blank)."""

    def __init__(self) -> None:
        super().__init__("transcribe", "empty transcript", reason="empty")


class _URL(Protocol):
    @property
    def path(self) -> str: ...


class _Request(Protocol):
    """What `where` reads of a request: httpx's, or the openai SDK's (typed as httpx2's in openai 3.x)."""

    @property
    def method(self) -> str: ...

    @property
    def url(self) -> _URL: ...


def where(request: _Request) -> str:
    """``METHOD /path`` of `request`, for logs (never shown to users)."""
    return f"{request.method} {request.url.path}"


def status_error(stage: Stage, e: openai.APIStatusError) -> VoiceError:
    """The VoiceError for an error status: its status, Retry-After and reason (busy for 429/503,
    undecodable / audio_too_big for a 4xx from transcription, else failed)."""
    response, status = e.response, e.status_code
    try:
        body = response.text[:300]
    except httpx.ResponseNotRead:
        body = str(e)[:300]
    detail = f"{where(response.request)} answered {status}: {body}"
    reason: Reason = "failed"
    if status in BUSY_STATUSES:
        reason = "busy"
    elif stage == "transcribe" and status in (400, 413, 415, 422):
        # The file itself is the problem (empty, not audio, too big or too long): sending the same
        # one again would not help.
        error = e.body if isinstance(e.body, dict) else {}
        fields = " ".join(str(error.get(k) or "") for k in ("code", "param", "message")).lower()
        too_big = status == 413 or any(w in fields for w in ("too_large", "too_long", "too long", "longer than"))
        reason = "audio_too_big" if too_big else "undecodable"
    return VoiceError(stage, detail, status=status, retry_after=retry_after(response), reason=reason)


def transport_error(stage: Stage, e: openai.APIConnectionError) -> VoiceError:
    cause = type(e.__cause__).__name__ if e.__cause__ is not None else type(e).__name__
    if isinstance(e, openai.APITimeoutError):
        return VoiceError(stage, f"{where(e.request)} timed out ({cause})")
    return VoiceError(stage, f"{where(e.request)} failed: {cause}: {e.__cause__ or e}")  # refused, reset...
