from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.email_verification import UNVERIFIED
from accounts.models import User
from accounts.services import DISPLAY_NAME_MAX, tokens_refresh
from accounts.tokens import refresh_token_issue
from core.api import StrictSerializer, TrimmedText, page_serializer


class UserSerializer(serializers.Serializer):
    """Output shape of a user (documentation; payloads are built by accounts.payloads)."""

    id = serializers.IntegerField()
    username = serializers.CharField()
    display_name = serializers.CharField()


class MeSerializer(UserSerializer):
    email = serializers.EmailField()


class UserDetailSerializer(UserSerializer):
    is_active = serializers.BooleanField(help_text="False once the account is deactivated")


UserPageSerializer = page_serializer("UserPageSerializer", UserSerializer)


class RegisterInput(StrictSerializer):
    username = serializers.CharField(max_length=150, trim_whitespace=True)
    email = serializers.CharField(max_length=254)
    password = serializers.CharField(max_length=128, trim_whitespace=False, write_only=True)
    display_name = TrimmedText(max_length=200, required=False, allow_blank=True, default="", limit=DISPLAY_NAME_MAX)


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class RegisterOutput(TokenPairSerializer):
    user = MeSerializer()


class LogoutInput(StrictSerializer):
    refresh = serializers.CharField()
    everywhere = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Sign out everywhere: every token, browser session and socket of the caller's",
    )


class TokenObtainInput(TokenObtainPairSerializer):
    """simplejwt's log-in, starting a new sign-in (token family) each time."""

    @classmethod
    def get_token(cls, user: User) -> RefreshToken:  # type: ignore[override]
        # Called once the password is right: only the owner learns the address is unconfirmed.
        if not user.email_verified:
            raise AuthenticationFailed(UNVERIFIED, "email_unverified")
        return refresh_token_issue(user)


class TokenRefreshInput(TokenRefreshSerializer):
    """Exchange a refresh token for a new pair, the old one blacklisted (rotation).

    Refused with 401: a token that is expired, blacklisted or forged, and one
    whose account is gone or inactive, whose sign-in was revoked, or that
    predates the account's last sign-out everywhere. A used one revokes its
    whole sign-in (`accounts.services.tokens_refresh`).
    """

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        try:
            return tokens_refresh(refresh=attrs["refresh"])
        except AuthenticationFailed as refused:
            if refused.get_codes() in ("user_not_found", "user_inactive"):
                raise AuthenticationFailed(self.error_messages["no_active_account"], "no_active_account") from None
            raise


class ProfileInput(StrictSerializer):
    display_name = TrimmedText(max_length=200, allow_blank=True, limit=DISPLAY_NAME_MAX)
