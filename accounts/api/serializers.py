from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.serializers import TokenRefreshSerializer

from accounts.models import User
from core.api import StrictSerializer, page_serializer


class UserSerializer(serializers.Serializer):
    """Output shape of a user (documentation; payloads are built by accounts.payloads)."""

    id = serializers.IntegerField()
    username = serializers.CharField()
    display_name = serializers.CharField()


class MeSerializer(UserSerializer):
    email = serializers.EmailField()


UserPageSerializer = page_serializer("UserPageSerializer", UserSerializer)


class RegisterInput(StrictSerializer):
    username = serializers.CharField(max_length=150, trim_whitespace=True)
    email = serializers.CharField(max_length=254)
    password = serializers.CharField(max_length=128, trim_whitespace=False, write_only=True)
    display_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class RegisterOutput(TokenPairSerializer):
    user = MeSerializer()


class LogoutInput(StrictSerializer):
    refresh = serializers.CharField()
    everywhere = serializers.BooleanField(
        required=False, default=False, help_text="Also revoke every other refresh token of the caller's"
    )


class TokenRefreshInput(TokenRefreshSerializer):
    """simplejwt's refresh, where a token whose account was deleted is a 401 rather than a crash."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        try:
            return super().validate(attrs)
        except User.DoesNotExist:
            raise AuthenticationFailed("No active account found for the given token.", "no_active_account") from None


class ProfileInput(StrictSerializer):
    display_name = serializers.CharField(max_length=200, allow_blank=True)
