"""The web UI's pages behind emailed links: password reset (ask, then choose), and email confirmation."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.forms import SetPasswordMixin
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from accounts.email_verification import LINK_INVALID, email_verify
from accounts.password_reset import TOKEN_INVALID, password_reset_confirm, password_reset_request
from core import ratelimit
from core.errors import Invalid


class ResetRequestForm(forms.Form):
    email = forms.CharField(
        max_length=254, label="Email address", widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )


class ResetConfirmForm(SetPasswordMixin, forms.Form):
    new_password1, new_password2 = SetPasswordMixin.create_password_fields(
        label1="New password", label2="New password again"
    )

    def clean(self) -> dict[str, Any] | None:
        self.validate_passwords()
        return super().clean()


@csrf_protect
@never_cache
def reset_request(request: HttpRequest) -> HttpResponseBase:
    form = ResetRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            ratelimit.attempt(request, action="password_reset", username=form.cleaned_data["email"])
        except ratelimit.RateLimited:
            form.add_error(None, "Too many requests. Try again in an hour.")
            return render(request, "accounts/password_reset.html", {"form": form}, status=429)
        password_reset_request(email=form.cleaned_data["email"])
        # The same answer whether or not the address is known.
        messages.success(request, "If an account has that address, an email with a reset link is on its way.")
        return redirect("login")
    return render(request, "accounts/password_reset.html", {"form": form})


@sensitive_post_parameters("new_password1", "new_password2")
@csrf_protect
@never_cache
def reset_confirm(request: HttpRequest) -> HttpResponse:
    token = request.POST.get("token") or request.GET.get("token") or ""
    form = ResetConfirmForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            ratelimit.attempt(request, action="password_reset_confirm")
            password_reset_confirm(token=token, password=form.cleaned_data["new_password1"])
        except ratelimit.RateLimited:
            form.add_error(None, "Too many attempts. Try again in an hour.")
        except Invalid as error:
            detail = error.detail if isinstance(error.detail, dict) else {"token": error.detail}
            form.add_error("new_password1" if "password" in detail else None, detail.get("password", TOKEN_INVALID))
        else:
            messages.success(request, "Your password is changed. Log in with the new one.")
            return redirect("login")
    return render(request, "accounts/password_reset_confirm.html", {"form": form, "token": token})


@never_cache
def email_verify_page(request: HttpRequest, token: str) -> HttpResponse:
    """The link of a verification email: confirm the address, then on to the log-in page."""
    try:
        email_verify(token=token)
    except Invalid:
        messages.error(request, LINK_INVALID)
    else:
        messages.success(request, "Your email address is confirmed. You can log in.")
    return redirect("login")
