"""What the Discord bot sends, over Discord's REST API with httpx (nextcord only receives events).

nextcord 2.6's `File` cannot carry a voice message's fields, so replies are posted as the API
docs describe (https://discord.com/developers/docs/resources/message#create-message, "Voice
messages"): ``POST /channels/{id}/messages`` as multipart with

- ``payload_json``: ``{"flags": 8192, "attachments": [{"id": 0, "filename": "voice-message.ogg",
  "duration_secs": <float>, "waveform": <base64 of ≤256 amplitude bytes>}]}``
  (8192 = IS_VOICE_MESSAGE, 1 << 13; a voice message carries no content or other attachments),
- ``files[0]``: the OGG/Opus bytes.

Where voice messages are not allowed (error code 50173) the audio goes as a plain attachment with
the reply text. Text replies are split at Discord's 2000-character limit on sentence ends.
Every call raises DiscordError on a non-2xx answer or a transport failure.

Posts are retried (`core.retry`, over stamina) on 429 after the wait Discord names (``retry_after`` in the body, or
``Retry-After``; a wait over `max_wait` gives up), on 5xx and on a connection never made, at
most `attempts` tries. A post that timed out or lost its connection after it was sent may still
have been posted: it is not repeated, and its DiscordError says `may_have_arrived`, so no apology
contradicts a reply that shows up after all.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import httpx
import numpy as np

from core.busy import retry_after
from core.retry import retry
from core.text import split_message

log = logging.getLogger(__name__)

IS_VOICE_MESSAGE = 1 << 13
VOICE_MESSAGES_FORBIDDEN = 50173
TEXT_LIMIT = 2000
WAVEFORM_POINTS = 256
WAVEFORM_STEP_S = 0.1  # clients sample the recording at most every 100 ms


class DiscordError(Exception):
    """Discord answered an error (`status`, Discord's JSON error `code` when it sent one) or was unreachable."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        may_have_arrived: bool = False,
        wait: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code = status, code
        self.may_have_arrived = may_have_arrived
        """The request was sent and its answer lost (a timeout): Discord may have carried it out."""
        self.wait = wait
        """Seconds a 429 asked to wait (None otherwise)."""


class AttachmentTooLarge(DiscordError):
    """The attachment is larger than the bot downloads."""


def waveform(samples: np.ndarray, sample_rate: int) -> str:
    """Base64 of up to 256 bytes: the peak amplitude of each ~100 ms slice, scaled so the loudest is 255."""
    samples = np.abs(np.asarray(samples, dtype=np.float32).reshape(-1))
    if not len(samples):
        return base64.b64encode(b"\x00").decode()
    points = int(min(WAVEFORM_POINTS, max(1, round(len(samples) / sample_rate / WAVEFORM_STEP_S))))
    peaks = np.array([chunk.max() if len(chunk) else 0.0 for chunk in np.array_split(samples, points)])
    top = float(peaks.max())
    scaled = np.zeros(points, dtype=np.uint8) if top <= 0 else np.round(peaks / top * 255).astype(np.uint8)
    return base64.b64encode(scaled.tobytes()).decode()


class DiscordREST:
    """Discord's REST API for one bot token over the caller's `http` client (its timeout applies)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        token: str,
        *,
        api_base: str = "https://discord.com/api/v10",
        attempts: int = 5,
        max_wait: float = 60.0,
    ) -> None:
        self._http = http
        self._api = api_base.rstrip("/")
        self._headers = {"Authorization": f"Bot {token}"}
        self.attempts, self.max_wait = max(1, attempts), max_wait

    async def download(self, url: str, *, max_bytes: int) -> bytes:
        """An attachment's bytes from its CDN `url`; DiscordError when larger than `max_bytes`."""
        try:
            async with self._http.stream("GET", url) as response:
                if response.is_error:
                    raise DiscordError(f"GET attachment answered {response.status_code}", status=response.status_code)
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > max_bytes:
                        raise AttachmentTooLarge(f"attachment larger than {max_bytes} bytes")
                return bytes(data)
        except httpx.HTTPError as e:
            raise DiscordError(f"attachment download failed: {type(e).__name__}: {e}") from e

    async def typing(self, channel_id: int) -> None:
        """Show "June is typing…" in the channel for ~10 s (or until June's next message)."""
        await self._post(f"/channels/{channel_id}/typing")

    async def send_text(self, channel_id: int, text: str, *, reply_to: int | None = None) -> None:
        """`text` in ≤2000-character messages; the first one replies to message `reply_to`."""
        for i, piece in enumerate(split_message(text, TEXT_LIMIT)):
            payload: dict[str, Any] = {"content": piece, "allowed_mentions": {"parse": []}}
            if reply_to is not None and i == 0:
                payload["message_reference"] = {"message_id": str(reply_to), "fail_if_not_exists": False}
            await self._post(f"/channels/{channel_id}/messages", json=payload)

    async def send_voice(
        self,
        channel_id: int,
        ogg: bytes,
        *,
        duration_secs: float,
        waveform_b64: str,
        text: str = "",
        reply_to: int | None = None,
    ) -> bool:
        """Post `ogg` as a voice message; True when it went as one, False when the channel refused
        voice messages (50173) and it went as a plain audio attachment with `text` instead."""
        attachment = {
            "id": 0,
            "filename": "voice-message.ogg",
            "duration_secs": round(duration_secs, 2),
            "waveform": waveform_b64,
        }
        payload: dict[str, Any] = {"flags": IS_VOICE_MESSAGE, "attachments": [attachment]}
        if reply_to is not None:
            payload["message_reference"] = {"message_id": str(reply_to), "fail_if_not_exists": False}
        try:
            await self._post_file(channel_id, payload, "voice-message.ogg", ogg)
            return True
        except DiscordError as e:
            if e.code != VOICE_MESSAGES_FORBIDDEN:
                raise
        fallback: dict[str, Any] = {
            "content": split_message(text, TEXT_LIMIT)[0] if text.strip() else "",
            "attachments": [{"id": 0, "filename": "june.ogg"}],
            "allowed_mentions": {"parse": []},
        }
        if reply_to is not None:
            fallback["message_reference"] = payload["message_reference"]
        await self._post_file(channel_id, fallback, "june.ogg", ogg)
        return False

    async def _post_file(self, channel_id: int, payload: dict[str, Any], filename: str, data: bytes) -> None:
        await self._post(
            f"/channels/{channel_id}/messages",
            data={"payload_json": json.dumps(payload)},
            files={"files[0]": (filename, data, "audio/ogg")},
        )

    async def _post(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """POST, retried as the module docstring says; DiscordError for what is left."""

        def classify(e: Exception, failures: int) -> bool | float:
            if failures >= self.attempts or not isinstance(e, DiscordError):
                return False
            if e.wait is not None:
                if e.wait > self.max_wait:
                    return False
                log.info("POST %s rate limited: retrying in %.2f s", path, e.wait)
                return e.wait
            return (e.status or 0) >= 500 or (e.status is None and not e.may_have_arrived)

        return await retry(lambda: self._post_once(path, **kwargs), classify, wait_initial=0.5, wait_max=10.0)

    async def _post_once(self, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.post(f"{self._api}{path}", headers=self._headers, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            raise DiscordError(f"POST {path} failed: {type(e).__name__}: {e}") from e
        except httpx.HTTPError as e:  # sent, answer lost: it may have been posted
            raise DiscordError(f"POST {path} failed: {type(e).__name__}: {e}", may_have_arrived=True) from e
        if response.is_error:
            body: Any = None
            try:
                body = response.json()
            except ValueError:
                pass
            body = body if isinstance(body, dict) else {}
            wait = None
            if response.status_code == 429:
                wait = (
                    body.get("retry_after")
                    if isinstance(body.get("retry_after"), (int, float))
                    else retry_after(response)
                )
                wait = 1.0 if wait is None else float(wait)
            raise DiscordError(
                f"POST {path} answered {response.status_code}: {response.text[:300]}",
                status=response.status_code,
                code=body.get("code"),
                wait=wait,
            )
        return response.json() if response.content else {}
