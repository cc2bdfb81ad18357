"""Password rules beyond Django's own validators (settings.AUTH_PASSWORD_VALIDATORS)."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from core.text import has_visible_character

NOTHING_VISIBLE = "A password needs at least one visible character."


class VisibleCharacterValidator:
    """Refuse a password of only spaces or invisible characters: long enough, yet trivial to guess."""

    def validate(self, password: str, user: object = None) -> None:
        if not has_visible_character(password):
            raise ValidationError(NOTHING_VISIBLE, code="password_nothing_visible")

    def get_help_text(self) -> str:
        return "Your password must contain at least one visible character."
