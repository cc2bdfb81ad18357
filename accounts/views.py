"""Account pages of the web UI: sign up, log in, log out and the profile.

Plain server-rendered forms with session authentication and CSRF; the chat
screen itself is `web.views.chat`.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from accounts import services
from accounts.forms import LoginForm, PasswordForm, ProfileForm, SignupForm, add_service_errors
from accounts.models import User
from core import ratelimit
from core.errors import Invalid

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


class LoginPage(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        username = request.POST.get("username")
        wait = _refusal(request, action="login", username=username)
        if wait:
            form = LoginForm(request, initial={"username": username})
            context = self.get_context_data(form=form, refusal=_refusal_text(wait))
            return _too_many(self.render_to_response(context), wait)
        return super().post(request, *args, **kwargs)


login_page = LoginPage.as_view()


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
    elif request.method == "POST" and request.POST.get("form") == "everywhere":
        # Every token, browser session and socket of the account's, this browser's too.
        services.user_sign_out_everywhere(user=user)
        logout(request)
        messages.success(request, "You are signed out everywhere.")
        return redirect(settings.LOGOUT_REDIRECT_URL)
    context = {
        "profile_form": profile_form,
        "password_form": password_form,
        "refusal": _refusal_text(wait) if wait else "",
    }
    response = render(request, "accounts/profile.html", context)
    return _too_many(response, wait) if wait else response
