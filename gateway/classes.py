"""A request's class (`core.priority`), resolved from what it asks and what its key may do.

- ``X-June-Class: live | interactive | batch`` picks a class; without it, OpenAI's
  ``service_tier: "flex"`` (https://platform.openai.com/docs/guides/flex-processing: slower, for
  work nobody waits on) means batch; otherwise the key's own class (keys file ``class=``,
  interactive by default).
- A key may ask for its own class or a lower one, never a higher one (403 ``class_not_allowed``),
  so a batch key stays batch whatever its requests say.
- live is for the gateway's own /v1/realtime sessions: their loopback calls carry `LIVE_PROOF`
  with a secret made when the gateway starts, never sent anywhere else; a key the keys file marks
  ``class=live`` (say, a pipecat or LiveKit agent doing its own turn-taking) may ask for it too.
"""

from __future__ import annotations

import hmac
import secrets

from core.priority import HEADER, RANK, RequestClass
from core.web import OpenAIError, header_class
from gateway.auth import ApiKey

__all__ = ["LIVE_PROOF", "LiveProof", "resolve_class"]

LIVE_PROOF = "X-June-Live"
"""The header carrying a realtime session's proof that its loopback call is live work."""


class LiveProof:
    """The secret a gateway's realtime sessions send in `LIVE_PROOF` (one per gateway process)."""

    def __init__(self) -> None:
        self.secret = secrets.token_urlsafe(32)

    def holds(self, presented: str | None) -> bool:
        """Whether `presented` is this gateway's secret (constant-time compare)."""
        return presented is not None and hmac.compare_digest(presented.encode(), self.secret.encode())


def resolve_class(asked: str | None, service_tier: str | None, key: ApiKey, *, live: bool) -> RequestClass:
    """The class of a request: `asked` (the `X-June-Class` value, or None), else batch for
    `service_tier` "flex", else the key's class (live for a realtime session's call, `live` True).

    Raises OpenAIError 400 (code invalid_value) for an unknown class, 403 (code class_not_allowed)
    for a class above what the key (or, for `live`, the session) may use.
    """
    ceiling: RequestClass = "live" if live else key.request_class
    chosen = header_class(asked, "batch" if service_tier == "flex" and asked is None else ceiling)
    if RANK[chosen] < RANK[ceiling]:
        raise OpenAIError(
            403,
            f"This API key may not send {chosen} requests: its class is {ceiling} (live is for /v1/realtime "
            f"sessions). Ask for {ceiling} or a lower class, or leave {HEADER} out.",
            type="permission_error",
            param=HEADER,
            code="class_not_allowed",
        )
    return chosen
