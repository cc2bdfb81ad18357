"""Password reset over the API: ask by email (always 202), then set the password with the token."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.password_reset import password_reset_confirm, password_reset_request
from core import ratelimit
from core.api import StrictSerializer


class PasswordResetInput(StrictSerializer):
    email = serializers.CharField(max_length=254)


class PasswordResetConfirmInput(StrictSerializer):
    token = serializers.CharField(max_length=200)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class PasswordResetView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(
        request=PasswordResetInput,
        responses={202: None},
        summary="Email a password reset link (202 whether or not the address is known)",
    )
    def post(self, request: Request) -> Response:
        data = PasswordResetInput(data=request.data)
        data.is_valid(raise_exception=True)
        # Per address and per email asked for: nobody floods a mailbox through this.
        ratelimit.attempt(request, action="password_reset", username=data.validated_data["email"])
        password_reset_request(email=data.validated_data["email"])
        return Response(status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(
        request=PasswordResetConfirmInput,
        responses={204: None},
        summary="Set a new password with an emailed token; ends every sign-in of the account",
    )
    def post(self, request: Request) -> Response:
        data = PasswordResetConfirmInput(data=request.data)
        data.is_valid(raise_exception=True)
        ratelimit.attempt(request, action="password_reset_confirm")
        password_reset_confirm(token=data.validated_data["token"], password=data.validated_data["password"])
        return Response(status=status.HTTP_204_NO_CONTENT)
