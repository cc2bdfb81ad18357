"""What makes two names the same, and what a name may not hide.

- `username_key`: the form log-in, registration and the log-in throttle all
  compare usernames in (NFKC, then case folding), so whatever signs in as
  alice is also counted as alice.
- `username_skeleton`: the form in which two usernames look alike
  (`aIice`, `a1ice` and `alice`). Usernames are ASCII (models.USERNAME_PATTERN),
  so the table is the ASCII rows of Unicode's confusables (UTS #39), by hand.
"""

from __future__ import annotations

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
