"""What a bot tells the person chatting when a voice stage fails: short apologies with no URLs,
status codes or stack traces, chosen from a `core.voice_client.VoiceError`'s stage and reason."""

from __future__ import annotations

from core.voice_errors import Stage, VoiceError

__all__ = ["AUDIO_TOO_BIG", "BUSY", "NOTHING_HEARD", "UNDECODABLE", "apology"]

BUSY = "Sorry, I'm busy with other messages right now. Please try again in a minute."
"""When the wait a busy upstream asks for would end past the reply deadline."""

UNDECODABLE = (
    "I couldn't decode that audio. Could you record it again, or send it as a voice message "
    "(or an OGG, MP3 or WAV file)?"
)
AUDIO_TOO_BIG = "That recording is too big or too long for me. Could you send a shorter one?"
NOTHING_HEARD = "I couldn't hear anything in that voice message. Could you say it again?"

_STAGE_FAILED: dict[Stage, str] = {
    "transcribe": "Sorry, I couldn't understand that voice message right now. Please try again in a moment.",
    "chat": "Sorry, I couldn't come up with an answer right now. Please try again in a moment.",
    "speak": "Sorry, I couldn't speak my answer right now. Please try again in a moment.",
}


def apology(error: VoiceError) -> str:
    """The text to send for `error`: busy, a recording speech cannot use (undecodable, too big or
    silent: sending it again would not help, so the user hears why), else the failed stage's apology."""
    if error.reason == "busy":
        return BUSY
    if error.reason == "undecodable":
        return UNDECODABLE
    if error.reason == "audio_too_big":
        return AUDIO_TOO_BIG
    if error.reason == "empty":
        return NOTHING_HEARD
    return _STAGE_FAILED[error.stage]
