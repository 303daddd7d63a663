"""What a bot does with one message, independent of Telegram or Discord: the bots' shared core.

`Conversations.voice` / `.text` never raise for anything but cancellation: every message ends in a
`Reply` whose `outcome` is "reply", "error" (a short apology) or "refused" (allow-list, rate
limit, too long), within `deadline` seconds of arrival (waiting for the chat's lock included).
Each message is counted in `BotMetrics` and traced as one span, ``bot.message``.

Media limits are shared too: `MediaLimits` says whether a recording is too long or a file too big
(with the TOO_LONG / TOO_BIG texts). A bot refuses what it can judge before downloading
(`Conversations.refuse`); a fetch callable given to `Conversations.voice` raises `Refused` for
what only the downloaded bytes show, and that message is counted as "refused" as well.

Order of checks: allow-list (user or chat id) → per-user rate limit → the chat's lock (two
messages in one chat are answered one after the other, so history never races) → pipeline.

Each failure is told as what it was: the reply deadline (TOO_SLOW), a download that failed or
hung (DOWNLOAD_FAILED), a busy or failing stage or a file speech cannot decode (the pipeline's
`bots.apologies`). The pipeline waits for a busy upstream within the message's
deadline (`core.busy.patience`); when that waiting grows long, the adapter's `notify` is
called once with BUSY_NOTICE, so the user knows the answer is still coming.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
from opentelemetry import trace

from bots.apologies import apology
from bots.guard import AllowList
from bots.history import ChatStore
from bots.status import BotMetrics, Outcome
from core.busy import patience
from core.limits import Limiter, NoLimits, RateLimited
from core.voice import PipelineResult, VoicePipeline
from core.voice_errors import VoiceError

log = logging.getLogger(__name__)

NOT_ALLOWED = "Sorry, this bot is private."
RATE_LIMITED = "You're sending messages faster than I can answer. Please wait a moment and try again."
FORGOTTEN = "Done, I've forgotten our conversation."
TOO_SLOW = "Sorry, that took me too long. Please try again in a moment."
DOWNLOAD_FAILED = "Sorry, I couldn't download your recording. Could you send it again?"
BUSY_NOTICE = "Lots of people are talking to me right now. Your answer is on its way; it may take a minute."
UNEXPECTED = "Sorry, something went wrong on my side. Please try again."
TOO_LONG = "That recording is too long for me (at most {seconds} seconds). Could you send a shorter one?"
TOO_BIG = "That file is too big for me (at most {mb} MB). Could you send a smaller one?"


Notify = Callable[[str], Awaitable[object]]
"""Sends a short notice (text) to the chat a message came from, while its answer is being worked on."""


class _DownloadFailed(Exception):
    """The adapter's fetch callable failed (not with Refused): the recording never reached june."""


class Refused(Exception):
    """Raised by a `Conversations.voice` fetch callable to decline the message politely: it is
    answered with `text` and counted as "refused" (not "error")."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass(frozen=True)
class MediaLimits:
    """Longest recording (`max_seconds`) and largest file (`max_bytes`) a bot processes."""

    max_seconds: int = 120
    max_bytes: int = 20 * 2**20

    def refusal(self, *, seconds: float | None = None, size: int | None = None) -> str | None:
        """TOO_LONG when `seconds` is over the limit, else TOO_BIG when `size` (bytes) is, else None.
        An unknown (None) length or size passes."""
        if seconds is not None and seconds > self.max_seconds:
            return TOO_LONG.format(seconds=self.max_seconds)
        if size is not None and size > self.max_bytes:
            return TOO_BIG.format(mb=self.max_bytes // 2**20)
        return None

    def check(self, *, seconds: float | None = None, size: int | None = None) -> None:
        """Raises Refused with `refusal`'s text when `seconds` or `size` is over its limit."""
        if text := self.refusal(seconds=seconds, size=size):
            raise Refused(text)


@dataclass(frozen=True)
class Reply:
    """What to send back. `text` is the reply (or the apology); `audio` OGG/Opus (48 kHz mono) when
    spoken, with `samples` (float32 PCM at 48 kHz) and `audio_seconds`; `transcript` what was heard."""

    text: str
    outcome: Outcome
    audio: bytes | None = None
    samples: np.ndarray | None = None
    audio_seconds: float = 0.0
    transcript: str | None = None


@dataclass(frozen=True)
class Health:
    """/status: the LLM and speech as seen through the gateway."""

    llm_ok: bool
    models: list[str]
    speech_ok: bool
    detail: str = ""

    def text(self) -> str:
        llm = f"ok ({', '.join(self.models)})" if self.llm_ok else "unavailable"
        speech = "ok" if self.speech_ok else "unavailable"
        return f"Language model: {llm}\nSpeech: {speech}"


class Conversations:
    """The bot-independent core (see module docstring). `bot` names the bot in metrics and spans."""

    def __init__(
        self,
        pipeline: VoicePipeline,
        store: ChatStore,
        metrics: BotMetrics,
        *,
        limiter: Limiter | None = None,
        allow: AllowList | None = None,
        deadline: float = 180.0,
        tracer: trace.Tracer | None = None,
        busy_notice_after: float = 10.0,
    ) -> None:
        self.pipeline, self.store, self.metrics = pipeline, store, metrics
        self.limiter = limiter or NoLimits()
        self.allow = allow or AllowList()
        self.deadline = deadline
        self.busy_notice_after = busy_notice_after
        self._tracer = tracer or trace.get_tracer(__name__)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def voice(
        self,
        chat: str,
        user: str,
        audio: Callable[[], Awaitable[bytes]],
        *,
        filename: str = "voice.ogg",
        notify: Notify | None = None,
    ) -> Reply:
        """Answer a recording with voice. `audio()` fetches the bytes (runs under the deadline; it
        may raise `Refused`; any other failure is told as DOWNLOAD_FAILED); `filename`'s extension
        names the container for the speech service; `notify` sends BUSY_NOTICE (see module docstring)."""

        async def fetch() -> bytes:
            try:
                return await audio()
            except Refused:
                raise
            except Exception as e:  # a timeout, a network or Bot API error: not the reply deadline
                raise _DownloadFailed(f"{type(e).__name__}: {e}") from e

        async def work() -> PipelineResult:
            return await self.pipeline.run_voice(await fetch(), await self.store.messages(chat), filename=filename)

        return await self._handle("voice", chat, user, work, notify)

    async def text(self, chat: str, user: str, text: str, *, notify: Notify | None = None) -> Reply:
        """Answer a text message, out loud too when the chat's ``voice`` preference is on (default off)."""

        async def work() -> PipelineResult:
            say = (await self.store.prefs(chat)).get("voice") == "on"
            return await self.pipeline.run_text(text, await self.store.messages(chat), speak=say)

        return await self._handle("text", chat, user, work, notify)

    def refuse(self, kind: str, message: str) -> Reply:
        """A friendly refusal decided by the adapter (e.g. a voice message over the length limit), counted."""
        self.metrics.count(kind, "refused")
        return Reply(message, "refused")

    async def admitted(self, chat: str, user: str) -> str | None:
        """None when `user` in `chat` may be served now (and counts the message against the user's
        rate limit, shared by replicas when it lives in Redis), else the refusal text."""
        if not self.allow.allows(user, chat):
            return NOT_ALLOWED
        try:
            await self.limiter.admit(user)
        except RateLimited as e:
            log.info("user %s rate limited: %s", user, e)
            return RATE_LIMITED
        return None

    async def reset(self, chat: str) -> None:
        await self.store.clear(chat)

    async def prefs(self, chat: str) -> dict[str, str]:
        return await self.store.prefs(chat)

    async def toggle(self, chat: str, key: str, value: str) -> str:
        """Set the chat's preference `key` ("voice", "captions") to `value` ("on"/"off"); returns the
        confirmation to show, e.g. "Voice on."."""
        await self.store.set_pref(chat, key, value)
        return f"{key.capitalize()} {value}."

    async def health(self, timeout: float = 20.0) -> Health:
        """Probe the LLM (``GET /v1/models``) and speech (a one-word synthesis), concurrently."""

        async def llm() -> list[str]:
            async with asyncio.timeout(timeout):
                return await self.pipeline.models()

        async def speech() -> None:
            async with asyncio.timeout(timeout):
                await self.pipeline.speak("OK.")

        models, spoken = await asyncio.gather(llm(), speech(), return_exceptions=True)
        detail = "; ".join(str(r) for r in (models, spoken) if isinstance(r, BaseException))
        return Health(
            not isinstance(models, BaseException),
            [] if isinstance(models, BaseException) else models,
            not isinstance(spoken, BaseException),
            detail,
        )

    async def _handle(
        self,
        kind: str,
        chat: str,
        user: str,
        work: Callable[[], Awaitable[PipelineResult]],
        notify: Notify | None = None,
    ) -> Reply:
        start = time.perf_counter()
        with self._tracer.start_as_current_span(
            "bot.message", attributes={"june.bot": self.metrics.bot, "june.kind": kind, "june.chat": chat}
        ) as span:
            if refusal := await self.admitted(chat, user):
                reply = Reply(refusal, "refused")
            else:
                reply = await self._answer(kind, chat, work, notify)
            span.set_attribute("june.outcome", reply.outcome)
            self.metrics.count(kind, reply.outcome, time.perf_counter() - start)
            return reply

    async def _answer(
        self, kind: str, chat: str, work: Callable[[], Awaitable[PipelineResult]], notify: Notify | None
    ) -> Reply:
        lock = self._locks.get(chat)
        if lock is None:
            lock = self._locks[chat] = asyncio.Lock()
        notices: set[asyncio.Task[object]] = set()

        def on_busy() -> None:
            if notify is not None:
                notices.add(asyncio.create_task(_quietly(notify(BUSY_NOTICE))))

        timer = asyncio.timeout(self.deadline)
        try:
            async with timer:
                with patience(self.deadline, on_busy=on_busy, notice_after=self.busy_notice_after):
                    async with lock:
                        result = await work()
                        await self.store.add(chat, result.transcript, result.reply)
        except Refused as e:
            log.info("%s message in chat %s refused: %s", kind, chat, e)
            return Reply(e.text, "refused")
        except _DownloadFailed as e:
            log.warning("%s message in chat %s: download failed: %s", kind, chat, e)
            return Reply(DOWNLOAD_FAILED, "error")
        except VoiceError as e:
            log.warning("%s message in chat %s failed: %s", kind, chat, e)
            return Reply(apology(e), "error")
        except TimeoutError:
            if not timer.expired():  # some other timeout (the store...), not the reply deadline
                log.exception("%s message in chat %s timed out", kind, chat)
                return Reply(UNEXPECTED, "error")
            log.warning("%s message in chat %s passed the %.0f s deadline", kind, chat, self.deadline)
            return Reply(TOO_SLOW, "error")
        except Exception:  # a store outage...: apologise, keep serving
            log.exception("%s message in chat %s failed unexpectedly", kind, chat)
            return Reply(UNEXPECTED, "error")
        finally:
            task = asyncio.current_task()
            if notices and task is not None and task.cancelling():
                for notice in notices:  # the bot is stopping: don't hold it up for a courtesy
                    notice.cancel()
            elif notices:  # the notice goes before the answer, never after it
                await asyncio.wait(notices, timeout=10)
        transcript = result.transcript if kind == "voice" else None
        return Reply(result.reply, "reply", result.audio, result.samples, result.audio_seconds, transcript)


async def _quietly(send: Awaitable[object]) -> None:
    """Await a courtesy message; its failure must not touch the answer."""
    try:
        await send
    except Exception:
        log.warning("could not send a notice", exc_info=True)
