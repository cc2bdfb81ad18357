"""Forms of the account pages: sign up, log in, profile and password change.

They parse and do the simple checks; the account services decide, and
`add_service_errors` puts what a service refused next to the field it is about.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.backends import AllowAllUsersModelBackend, ModelBackend
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm
from django.contrib.auth.signals import user_login_failed

from accounts import oidc
from accounts.email_verification import UNVERIFIED
from accounts.mfa import mfa_enabled
from accounts.services import DISPLAY_NAME_MAX
from core.errors import ServiceError


def add_service_errors(form: forms.Form, error: ServiceError) -> None:
    """Attach a service's field errors to the form's fields (others to the whole form)."""
    detail = error.detail
    if not isinstance(detail, dict):
        form.add_error(None, str(detail))
        return
    for name, messages in detail.items():
        for message in messages if isinstance(messages, list) else [messages]:
            form.add_error(name if name in form.fields else None, str(message))


def display_name_field(help_text: str) -> forms.CharField:
    """Return the optional display-name field, the same wherever a form asks for it."""
    return forms.CharField(
        max_length=DISPLAY_NAME_MAX,
        required=False,
        label="Display name",
        help_text=help_text,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )


class SignupForm(forms.Form):
    username = forms.CharField(
        max_length=30,
        help_text="Letters, digits, underscores, dots or dashes. People @mention you by it.",
        widget=forms.TextInput(
            attrs={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false", "autofocus": True}
        ),
    )
    display_name = display_name_field("The name others see. You can change it later.")
    email = forms.CharField(
        max_length=254, label="Email address", widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    password = forms.CharField(
        strip=False,
        max_length=128,
        help_text="At least 8 characters, not a common password, not all digits.",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )


class LoginForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        # Usernames are case-insensitive here, unlike Django's default wording says.
        "invalid_login": "That username and password do not match an account.",
        # Shown only to someone who gave the account's password (see clean).
        "inactive": "This account is deactivated. If you think that is a mistake, ask the people who run this chat.",
        "unverified": UNVERIFIED,
    }

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if not user.email_verified:
            raise forms.ValidationError(self.error_messages["unverified"], code="unverified")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update({"autocapitalize": "none", "spellcheck": "false"})

    def clean(self) -> dict[str, Any]:
        """Check the password, then whether the account is active, so only its owner learns it is deactivated.

        The password of an inactive account is checked exactly as any other's,
        once: a wrong one gets the ordinary error in the ordinary time.
        """
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            user = AllowAllUsersModelBackend().authenticate(self.request, username=username, password=password)
            if user is None:
                user_login_failed.send(sender=__name__, credentials={"username": username}, request=self.request)
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(user)
            if oidc.sso_only() and not user.is_staff:
                raise forms.ValidationError(
                    f"Password sign-in is off here: sign in with {settings.OIDC_NAME}.", code="sso_only"
                )
            # Sessions are kept by the default backend, which refuses inactive accounts on every request.
            user.backend = f"{ModelBackend.__module__}.{ModelBackend.__qualname__}"
            self.user_cache = user
        return self.cleaned_data


class ProfileForm(forms.Form):
    display_name = display_name_field("Shown instead of your username. Leave empty to use your username.")


class PasswordForm(PasswordChangeForm):
    """Django's password change form: the current password, then the new one twice."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The profile page opens on the display name, not on this form.
        self.fields["old_password"].widget.attrs.pop("autofocus", None)
        # Plain text: the page escapes help text, and Django's default is an HTML list.
        self.fields["new_password1"].help_text = SignupForm.base_fields["password"].help_text


class CodeForm(forms.Form):
    """A second-factor code: six digits from the authenticator app, or a recovery code."""

    code = forms.CharField(
        max_length=64,
        label="Code",
        help_text="The 6-digit code your authenticator app shows now, or one of your recovery codes.",
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "autocapitalize": "none",
                "spellcheck": "false",
                "autofocus": True,
            }
        ),
    )


class AdminLoginForm(AdminAuthenticationForm):
    """The admin's log-in, which takes a password only: refused for accounts with two-factor on.

    Those sign in on the main login page (which asks for the code) and then open the admin.
    """

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if mfa_enabled(user):
            raise forms.ValidationError(
                "Two-factor sign-in is on for this account: log in on the main login page (/login/), "
                "then open the admin.",
                code="mfa_required",
            )
