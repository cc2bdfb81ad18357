"""Text as people read it: comparing it, and whether any of it shows."""

from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
    """Return `text` in the form where compatibility variants and case no longer differ.

    NFKC maps compatibility characters to their plain form (the long s `ſ` to
    `s`, fullwidth `Ａ` to `A`); case folding then removes case, and a second
    NFKC tidies what folding produced (Unicode's NFKC_Casefold, near enough).
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


# Controls, format characters (zero-width spaces and joiners, direction marks,
# tags, the BOM, soft hyphen), separators, and marks with nothing to sit on.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "Me"})
# Letters and symbols that fonts draw as nothing: Hangul fillers, the Braille blank.
_BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def has_visible_character(text: str) -> bool:
    """Whether anything in `text` shows on screen: not only whitespace or zero-width characters."""
    return any(
        character not in _BLANK_CHARACTERS and unicodedata.category(character) not in _INVISIBLE_CATEGORIES
        for character in text
    )
