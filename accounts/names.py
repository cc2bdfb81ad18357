"""What makes two names the same, and what a name may not hide.

- `username_key`: the form log-in, registration and the log-in throttle all
  compare usernames in (NFKC, then case folding), so whatever signs in as
  alice is also counted as alice.
- `username_skeleton`: the form in which two usernames look alike
  (`aIice`, `a1ice` and `alice`). Usernames are ASCII (models.USERNAME_PATTERN),
  so the table is the ASCII rows of Unicode's confusables (UTS #39), by hand.
- `display_name_clean`: a display name without the characters that reorder
  or hide text (bidi controls, zero-width and other invisible characters).
"""

from __future__ import annotations

import re
import unicodedata

from core.text import fold

# Each character, as typed, to what it is mistaken for (UTS #39 confusables.txt,
# the rows whose both sides are ASCII letters or digits). Applied before case
# folding: a capital I looks like a small l, a small i does not.
CONFUSABLE = {
    "0": "O",
    "1": "l",
    "I": "l",
    "m": "rn",
    "w": "vv",
    "W": "VV",
    "d": "cl",
}


def username_key(username: str) -> str:
    """Return the form in which two usernames are the same account (NFKC, case-folded)."""
    return fold(username)


def username_skeleton(username: str) -> str:
    """Return the form in which two usernames look alike: confusable characters mapped, then case-folded."""
    text = unicodedata.normalize("NFKC", username)
    return fold("".join(CONFUSABLE.get(character, character) for character in text))


# Characters that never show: Unicode's format (Cf: bidi controls, zero-width
# space and joiners, soft hyphen, tags), control, private-use, surrogate and
# unassigned categories, and the letters and marks that render as blank.
HIDDEN_CATEGORIES = {"Cf", "Cc", "Co", "Cs", "Cn"}
BLANK_CHARACTERS = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800", "\u034f", "\u17b4", "\u17b5"}
ZERO_WIDTH_JOINER = "\u200d"
ZERO_WIDTH_NON_JOINER = "\u200c"
EMOJI_MODIFIERS = {"\ufe0f", "\ufe0e", *map(chr, range(0x1F3FB, 0x1F400))}
SPACES = re.compile(r"\s+")


def _is_emoji(character: str) -> bool:
    return unicodedata.category(character) == "So" or character in EMOJI_MODIFIERS


def _is_joining_letter(character: str) -> bool:
    # Scripts such as Persian and the Indic ones need the non-joiner between letters.
    return not character.isascii() and unicodedata.category(character)[0] in "LM"


def _kept(text: str, index: int) -> bool:
    """Whether the character at `index` is one a reader sees (or one that joins visible characters)."""
    character = text[index]
    if character in BLANK_CHARACTERS:
        return False
    if unicodedata.category(character) not in HIDDEN_CATEGORIES:
        return True
    before = text[index - 1] if index > 0 else ""
    after = text[index + 1] if index + 1 < len(text) else ""
    if character == ZERO_WIDTH_JOINER:
        # Inside an emoji sequence (👩‍💻) it makes one picture of two.
        return bool(before and after) and _is_emoji(before) and _is_emoji(after)
    if character == ZERO_WIDTH_NON_JOINER:
        return bool(before and after) and _is_joining_letter(before) and _is_joining_letter(after)
    return False


def display_name_clean(display_name: str) -> str:
    """Return the display name with every run of spaces made one space and hidden characters removed."""
    spaced = SPACES.sub(" ", display_name)
    visible = "".join(character for index, character in enumerate(spaced) if _kept(spaced, index))
    return SPACES.sub(" ", visible).strip()
