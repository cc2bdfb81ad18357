"""What counts as visible text, for inputs that must show something (a message, a password)."""

from __future__ import annotations

import unicodedata

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
