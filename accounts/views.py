"""Account pages of the web UI: sign up, log in, log out and the profile.

Plain server-rendered forms with session authentication and CSRF; the chat
screen itself is `web.views.chat`.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from accounts import mfa, oidc, passkeys, security_events, services
from accounts.forms import CodeForm, LoginForm, PasswordForm, ProfileForm, SignupForm, add_service_errors
from accounts.models import User
from core import ratelimit
from core.errors import Invalid, NotFound, ServiceError

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _next_url(request: HttpRequest) -> str:
    """Return the `next` page if it is on this site, else the chat screen."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return settings.LOGIN_REDIRECT_URL


def _refusal(request: HttpRequest, *, action: str, username: object) -> int | None:
    """Count a password attempt against the API's limits; return the seconds to wait if it is refused.

    The pages would otherwise be a way around the API's limits on guessing
    passwords. A refused attempt must not check the password at all (its
    form is shown unbound), or the page would still tell right from wrong.
    """
    try:
        ratelimit.attempt(request, action=action, username=username)
    except ratelimit.RateLimited as refused:
        return int(getattr(refused, "wait", None) or 60)
    return None


def _refusal_text(wait: int) -> str:
    minutes = max(1, round(wait / 60))
    return f"Too many attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}."


def _too_many(response: HttpResponse, wait: int) -> HttpResponse:
    response.status_code = 429
    response["Retry-After"] = str(wait)
    return response


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
def signup(request: HttpRequest) -> HttpResponseBase:
    if request.user.is_authenticated:
        return redirect(_next_url(request))
    if oidc.sso_only():
        return redirect("login")
    form = SignupForm(request.POST or None)
    wait = None
    if request.method == "POST":
        wait = _refusal(request, action="register", username=request.POST.get("username"))
    if wait:
        kept = {name: request.POST.get(name, "") for name in ("username", "display_name", "email")}
        form = SignupForm(initial=kept)
    elif request.method == "POST" and form.is_valid():
        try:
            user = services.user_register(**form.cleaned_data)
        except Invalid as error:
            add_service_errors(form, error)
        else:
            if not user.email_verified:
                messages.success(request, "Almost there: follow the link we emailed you to confirm your address.")
                return redirect("login")
            login(request, user, backend=MODEL_BACKEND)
            return redirect(_next_url(request))
    context = {"form": form, "next": _next_url(request), "refusal": _refusal_text(wait) if wait else ""}
    response = render(request, "accounts/signup.html", context)
    return _too_many(response, wait) if wait else response


# The session key of a web sign-in waiting for its second factor: an `mfa_token` and where to go after.
MFA_PENDING = "accounts.mfa_pending"


class LoginPage(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["sso_name"] = settings.OIDC_NAME if oidc.enabled() else ""
        context["sso_only"] = oidc.sso_only()
        return context

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        """A right password: signed in, or, with two-factor on, on to the code page in this same session."""
        user: User = form.get_user()  # type: ignore[assignment]
        if mfa.mfa_enabled(user):
            self.request.session[MFA_PENDING] = {"token": mfa.mfa_token_issue(user), "next": self.get_success_url()}
            return redirect("login-code")
        response = super().form_valid(form)
        security_events.sign_in_record(user=user, request=self.request, via="web")
        return response

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        username = request.POST.get("username")
        wait = _refusal(request, action="login", username=username)
        if wait:
            form = LoginForm(request, initial={"username": username})
            context = self.get_context_data(form=form, refusal=_refusal_text(wait))
            return _too_many(self.render_to_response(context), wait)
        return super().post(request, *args, **kwargs)


login_page = LoginPage.as_view()


@csrf_protect
@never_cache
def login_passkey(request: HttpRequest) -> HttpResponseBase:
    """The web login with a passkey (static/js/passkeys.js): password-less, or the second step after the password.

    JSON in, JSON out: `{"credential", "second_factor"}` → `{"next"}`, or 400 `{"detail"}`.
    """
    if request.method != "POST":
        return JsonResponse({"detail": "POST a passkey's answer."}, status=405)
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return JsonResponse({"detail": "Send a JSON object."}, status=400)
    pending = request.session.get(MFA_PENDING) if body.get("second_factor") is True else None
    user = None
    target = _next_url(request)
    if body.get("second_factor") is True:
        if not isinstance(pending, dict):
            return JsonResponse({"detail": "Enter your password first."}, status=400)
        try:
            user = mfa.mfa_token_user(pending.get("token"))
        except mfa.MfaTokenRefused:
            return JsonResponse({"detail": "That sign-in took too long. Enter your password again."}, status=401)
        target = pending.get("next") or settings.LOGIN_REDIRECT_URL
    budget = f"user:{user.pk}" if user else None
    try:
        ratelimit.failures_check(request, action="mfa", username=budget)
        owner, _ = passkeys.login_verify(credential=body.get("credential"), request=request, user=user)
    except ratelimit.RateLimited as refused:
        return JsonResponse({"detail": _refusal_text(int(getattr(refused, "wait", None) or 60))}, status=429)
    except passkeys.CeremonyRefused as error:
        ratelimit.failure_count(request, action="mfa", username=budget)
        return JsonResponse({"detail": _first_message(error)}, status=400)
    login(request, owner, backend=MODEL_BACKEND)
    security_events.sign_in_record(user=owner, request=request, via="web+webauthn")
    return JsonResponse({"next": target})


@sensitive_post_parameters("code")
@csrf_protect
@never_cache
def login_code(request: HttpRequest) -> HttpResponseBase:
    """The web login's second step: the code from the authenticator app, or a recovery code."""
    pending = request.session.get(MFA_PENDING)
    if not isinstance(pending, dict):
        return redirect("login")
    try:
        user = mfa.mfa_token_user(pending.get("token"))
    except mfa.MfaTokenRefused:
        request.session.pop(MFA_PENDING, None)
        messages.error(request, "That sign-in took too long. Enter your password again.")
        return redirect("login")
    form = CodeForm(request.POST or None)
    refusal, status, wait = "", 200, 0
    if request.method == "POST" and form.is_valid():
        try:
            method = mfa.second_factor_check(user=user, code=form.cleaned_data["code"], request=request)
        except ratelimit.RateLimited as refused:
            wait = int(getattr(refused, "wait", None) or 60)
            refusal, status = _refusal_text(wait), 429
        except mfa.CodeRefused:
            form.add_error("code", "That code is wrong, already used or expired.")
            status = 401
        else:
            target = pending.get("next") or settings.LOGIN_REDIRECT_URL
            login(request, user, backend=MODEL_BACKEND)  # a new session key: the pending state goes with the old
            security_events.sign_in_record(user=user, request=request, via=f"web+{method}")
            if method == mfa.METHOD_RECOVERY:
                left = mfa.recovery_codes_left(user)
                messages.warning(request, f"You used a recovery code; {left} left. Make new ones in your profile.")
            return redirect(target)
    context = {
        "form": form,
        "refusal": refusal,
        "passkey": mfa.METHOD_WEBAUTHN in mfa.mfa_methods(user),
        "mfa_token": pending.get("token"),
    }
    response = render(request, "accounts/login_code.html", context)
    response.status_code = status
    if status == 429:
        response["Retry-After"] = str(wait)
    return response


class LogoutPage(auth_views.LogoutView):
    """Django's log-out, which also closes the sockets this browser session opened (4001)."""

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        user_id, session_key = request.user.pk, request.session.session_key
        response = super().post(request, *args, **kwargs)
        if user_id is not None and session_key:
            services.session_end(user_id=user_id, session_key=session_key)
        return response


# POST only (Django refuses a GET), so another site cannot log people out with a link.
logout_page = LogoutPage.as_view()


@sensitive_post_parameters("old_password", "new_password1", "new_password2")
@login_required
@csrf_protect
@never_cache
def profile(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    wait = None
    profile_form = ProfileForm(initial={"display_name": user.display_name})
    password_form = PasswordForm(user)
    if request.method == "POST" and request.POST.get("form") == "profile":
        profile_form = ProfileForm(request.POST)
        if profile_form.is_valid():
            try:
                services.user_update_profile(user=user, display_name=profile_form.cleaned_data["display_name"])
            except Invalid as error:
                add_service_errors(profile_form, error)
            else:
                messages.success(request, "Your display name is saved.")
                return redirect("profile")
    elif request.method == "POST" and request.POST.get("form") == "password":
        password_form = PasswordForm(user, request.POST)
        wait = _refusal(request, action="password", username=user.username)
        if wait:
            password_form = PasswordForm(user)
        elif password_form.is_valid():
            services.user_set_password(user=user, password=password_form.cleaned_data["new_password1"])
            # Keep this browser signed in; other sessions end with the old password.
            update_session_auth_hash(request, user)
            messages.success(request, "Your password is changed.")
            return redirect("profile")
    elif request.method == "POST" and request.POST.get("form") == "end-sign-in":
        family = security_events.parse_sign_in_id(request.POST.get("sign_in"))
        try:
            if family is None:
                raise NotFound("No such sign-in.")
            services.sign_in_end(user=user, family=family)
        except NotFound:
            messages.error(request, "That sign-in has already ended.")
        else:
            messages.success(request, "That sign-in is ended: the app must sign in again.")
        return redirect("profile")
    elif request.method == "POST" and request.POST.get("form") == "everywhere":
        # Every token, browser session and socket of the account's, this browser's too.
        services.user_sign_out_everywhere(user=user, request=request)
        logout(request)
        messages.success(request, "You are signed out everywhere.")
        return redirect(settings.LOGOUT_REDIRECT_URL)
    context = {
        "profile_form": profile_form,
        "password_form": password_form,
        "refusal": _refusal_text(wait) if wait else "",
        "has_2fa": mfa.mfa_enabled(user),
        "sign_ins": security_events.sign_ins_active(user=user),
        "activity": security_events.recent(user=user),
        "this_browser": security_events.client_of(request),
    }
    response = render(request, "accounts/profile.html", context)
    return _too_many(response, wait) if wait else response


def _int(raw: object) -> int:
    try:
        return int(str(raw))
    except ValueError:
        return 0


def _first_message(error: ServiceError) -> str:
    detail = error.detail
    if isinstance(detail, dict):
        first = next(iter(detail.values()), "")
        return str(first[0] if isinstance(first, list) else first)
    return str(detail)


@sensitive_post_parameters("code")
@login_required
@csrf_protect
@never_cache
def two_factor(request: HttpRequest) -> HttpResponse:
    """Set up, check and turn off two-factor sign-in; new recovery codes. Every change goes through accounts.mfa."""
    user: User = request.user  # type: ignore[assignment]
    # Where to go once it is on (the admin, for staff sent here by REQUIRE_2FA_FOR_STAFF).
    target = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = ""
    action = request.POST.get("form") if request.method == "POST" else None
    form = CodeForm(request.POST if action in ("confirm", "disable", "regenerate", "passkey-remove") else None)
    refusal, status, wait = "", 200, 0
    if action == "begin":
        try:
            mfa.totp_begin(user=user)
        except ServiceError as error:
            messages.error(request, str(error.detail))
        return redirect(f"{reverse('two-factor')}?{urlencode({'next': target})}" if target else "two-factor")
    if action == "passkey-rename":
        try:
            passkeys.passkey_rename(
                user=user, passkey_id=_int(request.POST.get("passkey")), name=request.POST.get("name", "")
            )
        except ServiceError as error:
            messages.error(request, _first_message(error))
        else:
            messages.success(request, "The passkey is renamed.")
        return redirect("two-factor")
    if action == "passkey-remove":
        try:
            passkeys.passkey_remove(
                user=user, passkey_id=_int(request.POST.get("passkey")), code=request.POST.get("code"), request=request
            )
        except ServiceError as error:
            messages.error(request, _first_message(error))
        else:
            messages.success(request, "The passkey is removed.")
        return redirect("two-factor")
    if action in ("confirm", "disable", "regenerate") and form.is_valid():
        code = form.cleaned_data["code"]
        try:
            if action == "confirm":
                codes = mfa.totp_confirm(user=user, code=code, request=request)
            elif action == "regenerate":
                codes = mfa.recovery_codes_regenerate(user=user, code=code, request=request)
            else:
                mfa.mfa_disable(user=user, code=code, request=request)
                messages.success(request, "Two-factor sign-in is off.")
                return redirect("two-factor")
        except ratelimit.RateLimited as refused:
            wait = int(getattr(refused, "wait", None) or 60)
            refusal, status = _refusal_text(wait), 429
        except ServiceError as error:
            add_service_errors(form, error)
            status = error.http_status
        else:
            # Shown once, in this response: only their hashes are kept.
            context = {"codes": codes, "just_enabled": action == "confirm", "next": target}
            return render(request, "accounts/recovery_codes.html", context)
    enabled = mfa.mfa_enabled(user)
    has_totp = mfa.METHOD_TOTP in mfa.mfa_methods(user)
    context = {
        "enabled": enabled,
        "has_totp": has_totp,
        "pending": None if has_totp else mfa.totp_pending(user=user),
        "passkeys": passkeys.passkeys_of(user),
        "codes_left": mfa.recovery_codes_left(user) if enabled else 0,
        "form": form,
        "action": action,
        "refusal": refusal,
        "required": settings.REQUIRE_2FA_FOR_STAFF and user.is_staff and not enabled,
        "next": target,
    }
    response = render(request, "accounts/two_factor.html", context)
    response.status_code = status
    if status == 429:
        response["Retry-After"] = str(wait)
    return response
