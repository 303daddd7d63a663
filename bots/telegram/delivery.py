"""Getting June's replies to Telegram: Bot API calls retried where that is safe, and the one failure
that must not be apologised for.

`RetryRequests` is an aiogram request middleware (``bot.session.middleware(RetryRequests())``), so
every call through the bot's session (``message.answer``, ``answer_voice``, ``getFile``…) gets it;
retries run on `core.retry` (stamina), as the voice client's do:

- 429 (``TelegramRetryAfter``): wait the ``retry_after`` Telegram names, then send again, unless
  that wait is longer than `max_wait` (a flood wait of minutes: give up and let the error show);
- 5xx (``TelegramServerError``), or an error page that is not the Bot API's JSON (a proxy's 502,
  ``ClientDecodeError``), or a connection that was never made: exponential backoff with jitter;
- at most `attempts` tries in all.

Not retried: a call that timed out or lost its connection after it was sent. Telegram may have
done it (a slow sendVoice upload still lands after aiogram gave up), so sending again would
duplicate the reply and an apology would contradict it: `may_have_arrived` tells the error
handler to stay quiet. ``getUpdates`` (the poller has its own backoff) and ``sendChatAction``
(cosmetic, refreshed every few seconds) pass straight through.
"""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import ClientDecodeError, TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import GetUpdates, Response, SendChatAction, TelegramMethod
from aiogram.methods.base import TelegramType
from aiohttp import ClientConnectorError

from core.retry import retry

log = logging.getLogger(__name__)


def _never_sent(e: BaseException) -> bool:
    """True when a TelegramNetworkError happened before the request left (connection refused, DNS)."""
    return isinstance(e, TelegramNetworkError) and isinstance(e.__cause__, ClientConnectorError)


def may_have_arrived(e: BaseException) -> bool:
    """True for a failed Bot API call that Telegram may still have carried out: it timed out or its
    connection broke after the request was sent. A reply that failed this way is not apologised for."""
    return isinstance(e, TelegramNetworkError) and not _never_sent(e)


class RetryRequests(BaseRequestMiddleware):
    """Retries Bot API calls on 429 (after Telegram's ``retry_after``, up to `max_wait` seconds),
    5xx, non-JSON error pages and refused connections; at most `attempts` tries (see module docstring).
    `wait_initial` / `wait_max` (seconds) shape the exponential backoff of the non-429 cases."""

    def __init__(
        self, *, attempts: int = 5, max_wait: float = 60.0, wait_initial: float = 0.5, wait_max: float = 10.0
    ) -> None:
        self.attempts, self.max_wait = max(1, attempts), max_wait
        self.wait_initial, self.wait_max = wait_initial, wait_max

    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Response[TelegramType]:
        if type(method) in (GetUpdates, SendChatAction):  # not isinstance: it would narrow away TelegramType
            return await make_request(bot, method)
        name = type(method).__name__

        def classify(e: Exception, failures: int) -> bool | float:
            if failures >= self.attempts:
                return False
            if isinstance(e, TelegramRetryAfter):
                if e.retry_after > self.max_wait:
                    log.warning(
                        "%s: Telegram asks to wait %s s, longer than %s s: giving up",
                        name,
                        e.retry_after,
                        self.max_wait,
                    )
                    return False
                log.info("%s: flood control, retrying in %s s", name, e.retry_after)
                return float(e.retry_after)
            if isinstance(e, (TelegramServerError, ClientDecodeError)) or _never_sent(e):
                log.info("%s failed (%s), retrying", name, e)
                return True
            return False

        return await retry(
            lambda: make_request(bot, method), classify, wait_initial=self.wait_initial, wait_max=self.wait_max
        )
