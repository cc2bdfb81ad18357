"""Passkeys over the API: register, list, rename and remove; sign in with one (second factor or password-less)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import mfa, passkeys
from accounts.api.serializers import (
    PasskeyListSerializer,
    PasskeyLoginInput,
    PasskeyLoginOptionsInput,
    PasskeyRegisteredSerializer,
    PasskeyRegisterInput,
    PasskeyRemoveInput,
    PasskeyRenameInput,
    PasskeySerializer,
    TokenPairSerializer,
    WebAuthnOptionsSerializer,
)
from accounts.models import User
from accounts.requests import AuthedRequest
from accounts.signin import api_sign_in
from core import ratelimit

REFUSED = OpenApiResponse(description="The answer does not hold: wrong challenge, origin, RP ID, key or signature")


class RegisterOptionsView(APIView):
    @extend_schema(request=None, responses=WebAuthnOptionsSerializer, summary="Start registering a passkey")
    def post(self, request: AuthedRequest) -> Response:
        return Response(passkeys.register_options(user=request.user, request=request))


class RegisterVerifyView(APIView):
    @extend_schema(
        request=PasskeyRegisterInput,
        responses={201: PasskeyRegisteredSerializer, 400: REFUSED},
        summary="Keep the passkey the authenticator made",
    )
    def post(self, request: AuthedRequest) -> Response:
        data = PasskeyRegisterInput(data=request.data)
        data.is_valid(raise_exception=True)
        registered = passkeys.register_verify(
            user=request.user,
            credential=data.validated_data["credential"],
            name=data.validated_data["name"],
            request=request,
        )
        body = {"passkey": passkeys.passkey_payload(registered.passkey), "recovery_codes": registered.recovery_codes}
        return Response(body, status=status.HTTP_201_CREATED)


class PasskeyListView(APIView):
    @extend_schema(responses=PasskeyListSerializer, summary="The caller's passkeys")
    def get(self, request: AuthedRequest) -> Response:
        return Response({"results": [passkeys.passkey_payload(key) for key in passkeys.passkeys_of(request.user)]})


class PasskeyDetailView(APIView):
    @extend_schema(request=PasskeyRenameInput, responses=PasskeySerializer, summary="Rename a passkey")
    def patch(self, request: AuthedRequest, passkey_id: int) -> Response:
        data = PasskeyRenameInput(data=request.data)
        data.is_valid(raise_exception=True)
        passkey = passkeys.passkey_rename(user=request.user, passkey_id=passkey_id, name=data.validated_data["name"])
        return Response(passkeys.passkey_payload(passkey))

    @extend_schema(request=PasskeyRemoveInput, responses={204: None}, summary="Remove a passkey")
    def delete(self, request: AuthedRequest, passkey_id: int) -> Response:
        data = PasskeyRemoveInput(data=request.data)
        data.is_valid(raise_exception=True)
        passkeys.passkey_remove(
            user=request.user, passkey_id=passkey_id, code=data.validated_data.get("code"), request=request
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


def _pending_user(token: object) -> User | None:
    return None if token is None else mfa.mfa_token_user(token)


class LoginOptionsView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(
        request=PasskeyLoginOptionsInput,
        responses=WebAuthnOptionsSerializer,
        summary="Start signing in with a passkey (with mfa_token: as the second factor)",
    )
    def post(self, request: Request) -> Response:
        data = PasskeyLoginOptionsInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = _pending_user(data.validated_data.get("mfa_token"))
        return Response(passkeys.login_options(request=request, user=user))


class LoginVerifyView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(
        request=PasskeyLoginInput,
        responses={200: TokenPairSerializer, 400: REFUSED, 401: OpenApiResponse(description="An expired mfa_token")},
        summary="Finish signing in with a passkey",
    )
    def post(self, request: Request) -> Response:
        data = PasskeyLoginInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = _pending_user(data.validated_data.get("mfa_token"))
        budget = f"user:{user.pk}" if user else None
        ratelimit.failures_check(request, action="mfa", username=budget)
        try:
            owner, _ = passkeys.login_verify(credential=data.validated_data["credential"], request=request, user=user)
        except passkeys.CeremonyRefused:
            ratelimit.failure_count(request, action="mfa", username=budget)
            raise
        return Response(api_sign_in(user=owner, request=request, via=mfa.METHOD_WEBAUTHN))
