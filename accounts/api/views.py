"""Accounts API: registration, tokens, logout, the caller's profile and user lookup."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenBackendError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from accounts import oidc, selectors, services
from accounts.api.serializers import (
    LogoutInput,
    MeSerializer,
    ProfileInput,
    RegisterInput,
    RegisterOutput,
    TokenObtainInput,
    TokenPairSerializer,
    TokenRefreshInput,
    TokenRefusedSerializer,
    UserDetailSerializer,
    UserPageSerializer,
)
from accounts.payloads import me_payload, user_detail_payload, user_payload
from accounts.requests import AuthedRequest
from accounts.signin import MfaRequired
from core import ratelimit
from core.api import LIMIT_PARAMETER, page_body, page_limit, query_int, query_text
from core.errors import Forbidden


def _field(request: Request, name: str) -> object:
    return request.data.get(name) if isinstance(request.data, dict) else None


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(request=RegisterInput, responses={201: RegisterOutput}, summary="Create an account")
    def post(self, request: Request) -> Response:
        # Per address and per username: account farming and name squatting.
        ratelimit.attempt(request, action="register", username=_field(request, "username"))
        if oidc.sso_only():
            raise Forbidden(f"Accounts are made by signing in with {settings.OIDC_NAME}.")
        data = RegisterInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_register(**data.validated_data)
        if not user.email_verified:
            # EMAIL_VERIFICATION=1: no tokens until the emailed link is followed.
            body = {"user": me_payload(user), "email_verification_required": True}
            return Response(body, status=status.HTTP_201_CREATED)
        return Response({"user": me_payload(user), **services.tokens_for(user)}, status=status.HTTP_201_CREATED)


class TokenView(TokenObtainPairView):
    """Exchange a username and password for an access and a refresh token.

    A wrong password, an unknown username and an inactive account get the
    same 401 in about the same time (Django's backend hashes the password
    even when no account matches). Each log-in starts a new sign-in (token family).
    """

    serializer_class = TokenObtainInput  # type: ignore[assignment]

    @extend_schema(
        responses={
            200: TokenPairSerializer,
            401: OpenApiResponse(
                TokenRefusedSerializer,
                description="A wrong password; or (code mfa_required) a right one for an account with two-factor on",
            ),
        }
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # Password guessing: per address, and per username across addresses.
        ratelimit.attempt(request, action="login", username=_field(request, "username"))
        try:
            return super().post(request, *args, **kwargs)
        except MfaRequired as required:
            return Response(required.body, status=status.HTTP_401_UNAUTHORIZED)


class TokenRefresh(TokenRefreshView):
    """Exchange a refresh token for a new pair; the old refresh token dies."""

    serializer_class = TokenRefreshInput  # type: ignore[assignment]

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        ratelimit.attempt(request, action="refresh", username=_token_owner(_field(request, "refresh")))
        return super().post(request, *args, **kwargs)


def _token_owner(raw: object) -> str | None:
    """Return "user:<id>" for a genuine refresh token (signature checked), else None."""
    # A token is ASCII; anything else (a lone surrogate) would break the decoder's encoding.
    if not isinstance(raw, str) or len(raw) > 4096 or not raw.isascii():
        return None
    try:
        payload = token_backend.decode(raw, verify=True)  # type: ignore[arg-type]  # stubs say Token; it takes the text
    except TokenBackendError:
        return None
    user_id = payload.get(jwt_settings.USER_ID_CLAIM)
    return f"user:{user_id}" if user_id is not None else None


class LogoutView(APIView):
    @extend_schema(
        request=LogoutInput,
        responses={205: None},
        summary="Sign out: end the refresh token's sign-in (with everywhere: every sign-in of the caller's)",
    )
    def post(self, request: AuthedRequest) -> Response:
        data = LogoutInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.refresh_token_revoke(user=request.user, refresh=data.validated_data["refresh"])
        if data.validated_data["everywhere"]:
            services.user_sign_out_everywhere(user=request.user, request=request)
        return Response(status=status.HTTP_205_RESET_CONTENT)


class MeView(APIView):
    @extend_schema(responses=MeSerializer, summary="The caller")
    def get(self, request: AuthedRequest) -> Response:
        return Response(me_payload(request.user))

    @extend_schema(request=ProfileInput, responses=MeSerializer, summary="Change the caller's display name")
    def patch(self, request: AuthedRequest) -> Response:
        data = ProfileInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_update_profile(user=request.user, display_name=data.validated_data["display_name"])
        return Response(me_payload(user))


class UserListView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="Part of a username or display name"),
            OpenApiParameter(
                "after", int, description="Return users with an id above this (the last id of the previous page)"
            ),
            LIMIT_PARAMETER,
        ],
        responses=UserPageSerializer,
        summary="Search users",
        operation_id="users_search",
    )
    def get(self, request: AuthedRequest) -> Response:
        users, has_more = selectors.user_search(
            query=query_text(request, "q"), after=query_int(request, "after") or 0, limit=page_limit(request)
        )
        return Response(page_body([user_payload(user) for user in users], has_more))


class UserDetailView(APIView):
    @extend_schema(responses=UserDetailSerializer, summary="A user, and whether the account is active")
    def get(self, request: AuthedRequest, user_id: int) -> Response:
        return Response(user_detail_payload(selectors.user_get(user_id=user_id)))
