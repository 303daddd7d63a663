"""Voice names: an engine's OpenAI-name table with a deployment's aliases (`voice_table`), a request's
`voice` resolved to weighted native voices (`resolve_voice`), language codes in BCP 47 (`language_tag`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from speech.engines import EngineInputError, Synthesizer, VoiceMix

__all__ = ["language_tag", "resolve_voice", "voice_table"]

_MIX_PART = re.compile(r"^\s*([\w.-]+)\s*(?:\(\s*([0-9]*\.?[0-9]+)\s*\))?\s*$")


def language_tag(code: str) -> str:
    """A language code as espeak-ng or Piper write it ("en-us", "en_US") in BCP 47 ("en-US")."""
    lang, _, region = code.replace("_", "-").partition("-")
    return f"{lang.lower()}-{region.upper()}" if region else lang.lower()


def voice_table(
    voices: tuple[str, ...], aliases: Mapping[str, str], overrides: Mapping[str, str], default: str
) -> tuple[dict[str, str], str]:
    """An engine's OpenAI-name map with a deployment's `overrides` (OpenAI or any other name → a
    native voice or an OpenAI name) applied, and the native `default` voice (a native or OpenAI name).

    Raises ValueError naming the installed voices when a target or the default is not one of them.
    """
    natives = {v.lower(): v for v in voices}
    table = {k.lower(): v for k, v in aliases.items()}
    for name, target in overrides.items():
        native = natives.get(target.lower()) or table.get(target.lower())
        if native is None:
            raise ValueError(f"voice alias {name!r} → {target!r}: not an installed voice ({', '.join(voices)})")
        table[name.lower()] = native
    native_default = natives.get(default.lower()) or table.get(default.lower())
    if native_default is None:
        raise ValueError(f"default voice {default!r} is not one of {', '.join(voices)}")
    return table, native_default


def resolve_voice(synthesizer: Synthesizer, name: str | None) -> VoiceMix:
    """The weighted native voices for a request's `voice`.

    Accepts a native name, an OpenAI alias, None (→ default) or, where the engine `can_mix`, a mix
    "jf_alpha(2)+jf_nezumi(1)" (weights default to 1, normalized to sum 1). Case-insensitive.
    Raises EngineInputError(param="voice") for an unknown name, a malformed mix, or a mix of
    several voices on an engine that cannot mix.
    """
    if not name or not name.strip():
        return ((synthesizer.default_voice, 1.0),)
    natives = {v.lower(): v for v in synthesizer.voices}
    parts: list[tuple[str, float]] = []
    for part in name.split("+"):
        m = _MIX_PART.match(part)
        if m is None:
            raise EngineInputError(
                f"Malformed voice {name!r}; expected e.g. 'jf_alpha(2)+jf_nezumi(1)'.", param="voice"
            )
        key, weight = m.group(1).lower(), float(m.group(2) or 1)
        if not math.isfinite(weight):  # "1" followed by 400 zeros is inf, and inf / inf is NaN
            raise EngineInputError(f"Voice weight {m.group(2)[:20]!r}… in {name[:80]!r} is too large.", param="voice")
        native = natives.get(key) or synthesizer.aliases.get(key)
        if native is None:
            known = ", ".join([*synthesizer.voices, *synthesizer.aliases])
            raise EngineInputError(f"Unknown voice {m.group(1)!r}; available: {known}.", param="voice")
        parts.append((native, weight))
    if len(parts) > 1 and not synthesizer.can_mix:
        raise EngineInputError(
            f"Voice mixes such as {name[:80]!r} need an engine that can blend voices (Kokoro); this "
            f"deployment speaks with {synthesizer.engine}. Name one voice: {', '.join(synthesizer.voices)}.",
            param="voice",
        )
    total = sum(w for _, w in parts)
    if not math.isfinite(total):
        raise EngineInputError(f"Voice weights in {name[:80]!r} are too large.", param="voice")
    if total <= 0:
        raise EngineInputError(f"Voice weights in {name!r} must add up to more than 0.", param="voice")
    return tuple((n, w / total) for n, w in parts)
