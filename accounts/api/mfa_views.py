"""Sign-in security over the API: the second step of `auth/token/`, two-factor set-up, and where one is signed in."""

from __future__ import annotations

import uuid

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import mfa, security_events, services
from accounts.api.serializers import (
    CodeInput,
    MfaStatusSerializer,
    RecoveryCodesSerializer,
    SecurityOverviewSerializer,
    TokenMfaInput,
    TokenPairSerializer,
    TotpEnrolmentSerializer,
)
from accounts.requests import AuthedRequest
from accounts.signin import api_sign_in

REFUSED = OpenApiResponse(description="A wrong, used or expired code, or an expired or forged mfa_token")


class TokenMfaView(APIView):
    """The second step of signing in: the `mfa_token` from `auth/token/` and a code."""

    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(
        request=TokenMfaInput,
        responses={200: TokenPairSerializer, 401: REFUSED, 429: OpenApiResponse(description="Too many wrong codes")},
        summary="Finish signing in with a second factor",
    )
    def post(self, request: Request) -> Response:
        data = TokenMfaInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = mfa.mfa_token_user(data.validated_data["mfa_token"])
        method = mfa.second_factor_check(user=user, code=data.validated_data["code"], request=request)
        return Response(api_sign_in(user=user, request=request, via=method))


class MfaView(APIView):
    @extend_schema(responses=MfaStatusSerializer, summary="Whether the caller has two-factor sign-in on")
    def get(self, request: AuthedRequest) -> Response:
        return Response(
            {
                "enabled": mfa.mfa_enabled(request.user),
                "methods": mfa.mfa_methods(request.user),
                "recovery_codes_left": mfa.recovery_codes_left(request.user),
            }
        )

    @extend_schema(request=CodeInput, responses={204: None, 401: REFUSED}, summary="Turn two-factor sign-in off")
    def delete(self, request: AuthedRequest) -> Response:
        data = CodeInput(data=request.data)
        data.is_valid(raise_exception=True)
        mfa.mfa_disable(user=request.user, code=data.validated_data["code"], request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TotpBeginView(APIView):
    @extend_schema(
        request=None,
        responses={200: TotpEnrolmentSerializer},
        summary="Start setting up an authenticator app (not active until confirmed)",
    )
    def post(self, request: AuthedRequest) -> Response:
        enrolment = mfa.totp_begin(user=request.user)
        return Response({"secret": enrolment.secret, "otpauth_url": enrolment.otpauth_url})


class TotpConfirmView(APIView):
    @extend_schema(
        request=CodeInput,
        responses={200: RecoveryCodesSerializer},
        summary="Confirm the authenticator with its first code: two-factor is on",
    )
    def post(self, request: AuthedRequest) -> Response:
        data = CodeInput(data=request.data)
        data.is_valid(raise_exception=True)
        codes = mfa.totp_confirm(user=request.user, code=data.validated_data["code"], request=request)
        return Response({"recovery_codes": codes})


class RecoveryCodesView(APIView):
    @extend_schema(
        request=CodeInput,
        responses={200: RecoveryCodesSerializer, 401: REFUSED},
        summary="Replace the recovery codes with ten new ones",
    )
    def post(self, request: AuthedRequest) -> Response:
        data = CodeInput(data=request.data)
        data.is_valid(raise_exception=True)
        codes = mfa.recovery_codes_regenerate(user=request.user, code=data.validated_data["code"], request=request)
        return Response({"recovery_codes": codes})


class SecurityView(APIView):
    @extend_schema(
        responses=SecurityOverviewSerializer,
        summary="Where the caller is signed in (API sign-ins) and their recent security events",
    )
    def get(self, request: AuthedRequest) -> Response:
        sign_ins = security_events.sign_ins_active(user=request.user)
        events = security_events.recent(user=request.user)
        return Response(
            {
                "sign_ins": [security_events.sign_in_payload(family) for family in sign_ins],
                "events": [security_events.event_payload(entry) for entry in events],
            }
        )


class SignInDetailView(APIView):
    @extend_schema(responses={204: None, 404: None}, summary="End one of the caller's API sign-ins")
    def delete(self, request: AuthedRequest, sign_in: uuid.UUID) -> Response:
        services.sign_in_end(user=request.user, family=sign_in)
        return Response(status=status.HTTP_204_NO_CONTENT)
