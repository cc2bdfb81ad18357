from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.serializers import (
    TokenObtainPairSerializer,
    TokenObtainSerializer,
    TokenRefreshSerializer,
)

from accounts import oidc
from accounts.email_verification import UNVERIFIED
from accounts.models import SecurityLogEntry, User
from accounts.services import DISPLAY_NAME_MAX, tokens_refresh
from accounts.signin import api_sign_in, password_step
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


class RegisterOutput(serializers.Serializer):
    """The new account, signed in; with EMAIL_VERIFICATION=1, no tokens until the emailed link is followed."""

    user = MeSerializer()
    access = serializers.CharField(required=False, help_text="Absent when email verification is required")
    refresh = serializers.CharField(required=False, help_text="Absent when email verification is required")
    email_verification_required = serializers.BooleanField(
        required=False, help_text="Present (true) when the account must confirm its email address before signing in"
    )


class LogoutInput(StrictSerializer):
    refresh = serializers.CharField()
    everywhere = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Sign out everywhere: every token, browser session and socket of the caller's",
    )


class TokenObtainInput(TokenObtainPairSerializer):
    """simplejwt's log-in, starting a new sign-in (token family) each time.

    For an account with two-factor on, a right password raises
    `accounts.signin.MfaRequired` instead of giving tokens.
    """

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        # The password check only (simplejwt's base class); tokens come from accounts.signin.
        TokenObtainSerializer.validate(self, attrs)
        user: User = self.user  # type: ignore[assignment]  # set by the password check, or it raised
        # After the password check: only the owner learns the address is unconfirmed.
        if not user.email_verified:
            raise AuthenticationFailed(UNVERIFIED, "email_unverified")
        if oidc.sso_only() and not user.is_staff:
            raise AuthenticationFailed(f"Password sign-in is off here: sign in with {settings.OIDC_NAME}.", "sso_only")
        password_step(user=user)
        return api_sign_in(user=user, request=self.context.get("request"), via="api")


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


# --- Two-factor sign-in ---------------------------------------------------------------


class TokenRefusedSerializer(serializers.Serializer):
    """A refused log-in: a wrong password (detail, maybe code), or a right one that needs more (code mfa_required)."""

    detail = serializers.CharField()
    code = serializers.CharField(required=False, help_text='"mfa_required": send mfa_token with a code; or "sso_only"')
    mfa_token = serializers.CharField(
        required=False, help_text="With mfa_required. Signed; good for 5 minutes (MFA_TOKEN_SECONDS)"
    )
    methods = serializers.ListField(
        child=serializers.CharField(), required=False, help_text='With mfa_required: "totp", "recovery", "webauthn"'
    )


class TokenMfaInput(StrictSerializer):
    mfa_token = serializers.CharField(max_length=512)
    code = serializers.CharField(max_length=64, help_text="A 6-digit authenticator code or a recovery code")


class CodeInput(StrictSerializer):
    code = serializers.CharField(
        max_length=64, help_text="A current authenticator code (or, to turn off or make new codes, a recovery code)"
    )


class TotpEnrolmentSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="Base32, for typing into an authenticator app")
    otpauth_url = serializers.CharField(help_text="The same as an otpauth:// URL, for a QR code")


class RecoveryCodesSerializer(serializers.Serializer):
    recovery_codes = serializers.ListField(
        child=serializers.CharField(), help_text="Ten single-use codes, shown this once"
    )


class MfaStatusSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    methods = serializers.ListField(child=serializers.CharField())
    recovery_codes_left = serializers.IntegerField()


class SignInSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The sign-in's id (a UUID in hex), for DELETE auth/sign-ins/{sign_in}/")
    user_agent = serializers.CharField()
    ip = serializers.IPAddressField(allow_null=True)
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True, help_text="The last refresh; null if never refreshed")


class SecurityEventSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=SecurityLogEntry.Kind.choices)
    description = serializers.CharField()
    created_at = serializers.DateTimeField()
    ip = serializers.IPAddressField(allow_null=True)
    user_agent = serializers.CharField()
    via = serializers.CharField()


class SecurityOverviewSerializer(serializers.Serializer):
    sign_ins = SignInSerializer(many=True)
    events = SecurityEventSerializer(many=True)


# --- Passkeys ---------------------------------------------------------------------------


class PasskeySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)


class PasskeyListSerializer(serializers.Serializer):
    results = PasskeySerializer(many=True)


class PasskeyRegisterInput(StrictSerializer):
    credential = serializers.JSONField(help_text="The PublicKeyCredential from navigator.credentials.create(), as JSON")
    name = serializers.CharField(max_length=200, help_text="What to call it: the device it is on")


class PasskeyRegisteredSerializer(serializers.Serializer):
    passkey = PasskeySerializer()
    recovery_codes = serializers.ListField(
        child=serializers.CharField(), help_text="Ten codes when this is the account's first second factor, else []"
    )


class PasskeyRenameInput(StrictSerializer):
    name = serializers.CharField(max_length=200)


class PasskeyRemoveInput(StrictSerializer):
    code = serializers.CharField(
        max_length=64, required=False, help_text="Needed to remove the last second factor: a recovery code"
    )


class PasskeyLoginOptionsInput(StrictSerializer):
    mfa_token = serializers.CharField(
        max_length=512,
        required=False,
        help_text="From auth/token/: the passkey is the 2nd factor. Without: password-less",
    )


class PasskeyLoginInput(PasskeyLoginOptionsInput):
    credential = serializers.JSONField(help_text="The PublicKeyCredential from navigator.credentials.get(), as JSON")


class WebAuthnOptionsSerializer(serializers.Serializer):
    challenge = serializers.CharField(help_text="base64url; the other fields are WebAuthn's, binary ones base64url")
