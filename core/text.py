"""Comparing text as people read it."""

from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
    """Return `text` in the form where compatibility variants and case no longer differ.

    NFKC maps compatibility characters to their plain form (the long s `ſ` to
    `s`, fullwidth `Ａ` to `A`); case folding then removes case, and a second
    NFKC tidies what folding produced (Unicode's NFKC_Casefold, near enough).
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
