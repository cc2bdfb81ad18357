"""Single sign-on with any OpenID Connect provider, through mozilla-django-oidc.

Why mozilla-django-oidc and not django-allauth: it is one authentication
backend and two views on top of Django's own sessions, so it adds no models,
templates or account flows of its own beside ours (allauth brings its own
sign-up, email and account management, which would duplicate `accounts`).
It does the code flow with state, nonce and PKCE, and checks the ID token's
signature against the provider's keys; this module adds what it leaves out:

- discovery: the endpoints come from `OIDC_ISSUER/.well-known/openid-configuration`
  (kept in the cache for an hour), not from five settings;
- the ID token's issuer and audience are checked too;
- accounts are matched by *verified* email only (an unverified one could
  take over someone's account), or created on first sign-in with a free
  username and no password;
- a provider that is down is a clear page (503), not a 500, and a callback
  with a bad state, nonce or signature is refused and logged.

Configured by environment: OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET,
OIDC_NAME (the button's "Sign in with …"); SSO_ONLY=1 turns password sign-in
off for everyone but staff.
"""

from __future__ import annotations

import re
from typing import Any

import requests
import structlog
from django.conf import settings
from django.contrib import auth, messages
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import render
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from accounts import security_events
from accounts.models import User
from accounts.names import username_key, username_skeleton

log = structlog.get_logger(__name__)

DISCOVERY_SECONDS = 3600
PROVIDER_TIMEOUT_SECONDS = 5
USERNAME_MAX = 30


class ProviderUnavailable(Exception):
    """The identity provider could not be reached or answered nonsense."""


def enabled() -> bool:
    return bool(settings.OIDC_ISSUER and settings.OIDC_CLIENT_ID)


def sso_only() -> bool:
    """Whether password sign-in is off for non-staff (SSO_ONLY=1 with a provider configured)."""
    return bool(settings.SSO_ONLY) and enabled()


def discovery() -> dict[str, Any]:
    """The provider's OpenID configuration (its endpoints and issuer), fetched once an hour."""
    issuer = settings.OIDC_ISSUER.rstrip("/")
    key = f"oidc:discovery:{issuer}"
    document = cache.get(key)
    if isinstance(document, dict):
        return document
    try:
        response = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=PROVIDER_TIMEOUT_SECONDS)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as error:
        log.warning("oidc.discovery_failed", issuer=issuer, error=str(error))
        raise ProviderUnavailable(str(error)) from None
    needed = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint")
    if not isinstance(document, dict) or any(not isinstance(document.get(name), str) for name in needed):
        raise ProviderUnavailable("the discovery document lacks endpoints")
    if document["issuer"].rstrip("/") != issuer:
        # The document must be the issuer's own (OpenID Connect Discovery 1.0, section 4.3).
        raise ProviderUnavailable("the discovery document names another issuer")
    cache.set(key, document, DISCOVERY_SECONDS)
    return document


def _free_username(claims: dict[str, Any]) -> str:
    """A username for a new account: the provider's preferred one or the email's local part, made valid and free."""
    raw = str(claims.get("preferred_username") or str(claims.get("email", "")).split("@")[0] or "user")
    base = re.sub(r"[^A-Za-z0-9_.-]", "", raw).strip(".-")[:24] or "user"
    taken = User.objects.alias(username_lower=Lower("username"))
    for number in range(1000):
        candidate = base if number == 0 else f"{base}{number + 1}"
        if (
            not taken.filter(username_lower=username_key(candidate)).exists()
            and not User.objects.filter(username_skeleton=username_skeleton(candidate)).exists()
        ):
            return candidate
    raise SuspiciousOperation("no free username")


class OIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend: endpoints from discovery, issuer and audience checked, verified email matched."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The library reads fixed endpoint settings here; ours come from discovery, per sign-in.
        self.UserModel = User
        self.OIDC_RP_CLIENT_ID = settings.OIDC_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = "RS256"
        self.OIDC_RP_IDP_SIGN_KEY = None

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> User | None:  # type: ignore[override]
        if not enabled() or request is None or "nonce" not in kwargs:
            return None
        document = discovery()
        self.OIDC_OP_TOKEN_ENDPOINT = document["token_endpoint"]
        self.OIDC_OP_USER_ENDPOINT = document["userinfo_endpoint"]
        self.OIDC_OP_JWKS_ENDPOINT = document["jwks_uri"]
        self.issuer = document["issuer"]
        user: User | None = super().authenticate(request, **kwargs)
        return user

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        payload: dict[str, Any] = super().verify_token(token, **kwargs)  # signature, expiry, nonce
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if payload.get("iss") != self.issuer or self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("the ID token is for another issuer or client")
        return payload

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        if not claims.get("email") or claims.get("email_verified") is not True:
            log.warning("oidc.email_unverified", sub=claims.get("sub"))
            return False
        return True

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        return User.objects.filter(email__iexact=str(claims["email"]), erased_at__isnull=True)

    def create_user(self, claims: dict[str, Any]) -> User:
        name = str(claims.get("name") or "")[:64]
        try:
            with transaction.atomic():
                user = User.objects.create_user(
                    username=_free_username(claims), email=str(claims["email"]), password=None, display_name=name
                )
        except IntegrityError:
            raise SuspiciousOperation("the account could not be created") from None
        log.info("oidc.account_created", user_id=user.pk)
        return user

    def update_user(self, user: User, claims: dict[str, Any]) -> User:
        return user


def _unavailable(request: HttpRequest) -> HttpResponse:
    response = render(request, "accounts/sso_unavailable.html", {"provider": settings.OIDC_NAME}, status=503)
    response["Retry-After"] = "60"
    return response


class SignInRequest(OIDCAuthenticationRequestView):
    """Send the browser to the provider, with state, nonce and a PKCE challenge kept in the session."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.OIDC_RP_CLIENT_ID = settings.OIDC_CLIENT_ID

    def get(self, request: HttpRequest) -> HttpResponseBase:
        if not enabled():
            return HttpResponseRedirect(settings.LOGIN_URL)
        try:
            self.OIDC_OP_AUTH_ENDPOINT = discovery()["authorization_endpoint"]
        except ProviderUnavailable:
            return _unavailable(request)
        response: HttpResponseBase = super().get(request)
        return response


class SignInCallback(OIDCAuthenticationCallbackView):
    """The provider's answer: refused and logged when state, nonce or signature are wrong; signed in otherwise."""

    @property
    def failure_url(self) -> str:
        return str(settings.LOGIN_URL)

    def login_failure(self) -> HttpResponseRedirect:
        messages.error(self.request, f"Signing in with {settings.OIDC_NAME} did not work. Try again.")
        return HttpResponseRedirect(self.failure_url)

    def login_success(self) -> HttpResponseRedirect:
        # Django's own backend keeps the session, so a deactivated account's session ends as any other's.
        auth.login(self.request, self.user, backend="django.contrib.auth.backends.ModelBackend")
        security_events.sign_in_record(user=self.user, request=self.request, via="sso")
        return HttpResponseRedirect(self.success_url)

    def get(self, request: HttpRequest) -> HttpResponseBase:
        if not enabled():
            return HttpResponseRedirect(settings.LOGIN_URL)
        try:
            response: HttpResponseBase = super().get(request)
        except (SuspiciousOperation, requests.HTTPError) as refused:
            # A forged or replayed callback, or a code the provider would not redeem.
            log.warning("oidc.callback_refused", reason=str(refused))
            return self.login_failure()
        except (ProviderUnavailable, requests.RequestException) as error:
            log.warning("oidc.provider_unavailable", error=str(error))
            return _unavailable(request)
        return response


sign_in_request = SignInRequest.as_view()
sign_in_callback = SignInCallback.as_view()
