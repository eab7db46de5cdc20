"""Checks for text that must never be stored: NUL, lone surrogates, bidi overrides."""

from __future__ import annotations

import unicodedata

from .i18n import _

# Explicit bidi embeddings, overrides and isolates can disguise identifiers.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def text_problem(value: str, *, identifier: bool = False, multiline: bool = True) -> str | None:
    """Explain what is wrong with ``value``, or return None when it is acceptable."""
    for ch in value:
        code = ord(ch)
        if code == 0:
            return _("Contains a NUL character, which cannot be stored.")
        if 0xD800 <= code <= 0xDFFF:
            return _("Contains a broken character (lone surrogate).")
        if ch in "\r\n\t":
            if not multiline and ch != "\t":
                return _("Use a single line.")
            continue
        category = unicodedata.category(ch)
        if category == "Cc":
            return _("Contains an invisible control character.")
        if identifier and (ch in BIDI_CONTROLS or category in ("Cf", "Zl", "Zp")):
            return _("Contains invisible formatting characters; type it plainly.")
    return None
