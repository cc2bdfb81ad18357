from django.contrib import admin
from django.urls import include, path, re_path, register_converter
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView

from accounts import oidc, password_pages
from accounts import views as account_pages
from accounts.api import mfa_views as accounts_mfa
from accounts.api import passkey_views as accounts_passkeys
from accounts.api import password_reset
from accounts.api import views as accounts
from core import errors, health
from core.api import ID_MAX
from core.ratelimit import limit_form_login
from core.security import ApiDocsView
from files.api import views as files
from messaging.api import thread_views as threads
from messaging.api import views as messaging
from notifications import views as notification_pages
from notifications.api import views as notifications
from realtime import views as realtime_views
from rooms.api import views as rooms
from web import views as pages


class IdConverter:
    """A database id: a positive integer that fits in a 64-bit column.

    Larger numbers do not match, so they get the JSON 404 instead of reaching
    the database (which would refuse them with an error).
    """

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 0 < number <= ID_MAX:
            raise ValueError("not a database id")
        return number

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")

# The admin's log-in form gets the same password-guessing limits as the API's token route.
admin.site.login = limit_form_login(admin.site.login)  # type: ignore[method-assign,assignment]

api_v1 = [
    path("auth/register/", accounts.RegisterView.as_view(), name="register"),
    path("auth/token/", accounts.TokenView.as_view(), name="token"),
    path("auth/token/refresh/", accounts.TokenRefresh.as_view(), name="token-refresh"),
    path("auth/logout/", accounts.LogoutView.as_view(), name="logout"),
    # Two-factor sign-in (accounts.mfa).
    path("auth/token/mfa/", accounts_mfa.TokenMfaView.as_view(), name="token-mfa"),
    path("auth/2fa/", accounts_mfa.MfaView.as_view(), name="mfa"),
    path("auth/2fa/totp/", accounts_mfa.TotpBeginView.as_view(), name="mfa-totp"),
    path("auth/2fa/totp/confirm/", accounts_mfa.TotpConfirmView.as_view(), name="mfa-totp-confirm"),
    path("auth/2fa/recovery-codes/", accounts_mfa.RecoveryCodesView.as_view(), name="mfa-recovery-codes"),
    path("auth/security/", accounts_mfa.SecurityView.as_view(), name="security"),
    path("auth/webauthn/register/options/", accounts_passkeys.RegisterOptionsView.as_view(), name="passkey-options"),
    path("auth/webauthn/register/verify/", accounts_passkeys.RegisterVerifyView.as_view(), name="passkey-reg-verify"),
    path("auth/webauthn/login/options/", accounts_passkeys.LoginOptionsView.as_view(), name="passkey-login-options"),
    path("auth/webauthn/login/verify/", accounts_passkeys.LoginVerifyView.as_view(), name="passkey-login-verify"),
    path("auth/webauthn/passkeys/", accounts_passkeys.PasskeyListView.as_view(), name="passkeys"),
    path("auth/webauthn/passkeys/<id:passkey_id>/", accounts_passkeys.PasskeyDetailView.as_view(), name="passkey"),
    # A sign-in is named by its token family's UUID, not a database integer id.
    path("auth/sign-ins/<uuid:sign_in>/", accounts_mfa.SignInDetailView.as_view(), name="sign-in"),
    path("auth/password/reset/", password_reset.PasswordResetView.as_view(), name="password-reset"),
    path(
        "auth/password/reset/confirm/", password_reset.PasswordResetConfirmView.as_view(), name="password-reset-confirm"
    ),
    path("users/me/", accounts.MeView.as_view(), name="me"),
    path("users/", accounts.UserListView.as_view(), name="users"),
    path("users/<id:user_id>/", accounts.UserDetailView.as_view(), name="user"),
    path("rooms/", rooms.RoomListView.as_view(), name="rooms"),
    path("rooms/public/", rooms.PublicRoomListView.as_view(), name="rooms-public"),
    path("rooms/read/", messaging.ReadAllView.as_view(), name="rooms-read"),
    path("rooms/<id:room_id>/", rooms.RoomDetailView.as_view(), name="room"),
    path("rooms/<id:room_id>/join/", rooms.RoomJoinView.as_view(), name="room-join"),
    path("rooms/<id:room_id>/leave/", rooms.RoomLeaveView.as_view(), name="room-leave"),
    path("rooms/<id:room_id>/members/", rooms.MemberListView.as_view(), name="room-members"),
    path("rooms/<id:room_id>/members/<id:user_id>/", rooms.MemberDetailView.as_view(), name="room-member"),
    path("rooms/<id:room_id>/bans/", rooms.BanListView.as_view(), name="room-bans"),
    path("rooms/<id:room_id>/bans/<id:user_id>/", rooms.BanDetailView.as_view(), name="room-ban"),
    path("rooms/<id:room_id>/read/", messaging.ReadView.as_view(), name="room-read"),
    path("rooms/<id:room_id>/messages/", messaging.MessageListView.as_view(), name="room-messages"),
    path("dms/", rooms.DirectView.as_view(), name="dms"),
    path("presence/", realtime_views.PresenceView.as_view(), name="presence"),
    path("messages/<id:message_id>/", messaging.MessageDetailView.as_view(), name="message"),
    path("messages/<id:message_id>/edits/", messaging.EditHistoryView.as_view(), name="message-edits"),
    path("messages/<id:message_id>/reactions/", messaging.ReactionListView.as_view(), name="message-reactions"),
    path(
        "messages/<id:message_id>/reactions/<str:emoji>/",
        messaging.ReactionDetailView.as_view(),
        name="message-reaction",
    ),
    path("messages/<id:message_id>/report/", messaging.ReportView.as_view(), name="message-report"),
    path("search/messages/", messaging.SearchView.as_view(), name="search-messages"),
    # Files: upload into a room, then download while the message is visible to the caller.
    path("rooms/<id:room_id>/uploads/", files.UploadView.as_view(), name="room-uploads"),
    path("files/<id:file_id>/", files.FileView.as_view(), name="file"),
    path("files/<id:file_id>/thumbnail/", files.ThumbnailView.as_view(), name="file-thumbnail"),
    # Threads and pins (messaging.threads, messaging.pins).
    path("messages/<id:message_id>/thread/", threads.ThreadView.as_view(), name="message-thread"),
    path("messages/<id:message_id>/thread/read/", threads.ThreadReadView.as_view(), name="message-thread-read"),
    path("messages/<id:message_id>/follow/", threads.ThreadFollowView.as_view(), name="message-follow"),
    path("threads/", threads.FollowedThreadListView.as_view(), name="threads"),
    path("messages/<id:message_id>/pin/", threads.PinView.as_view(), name="message-pin"),
    path("rooms/<id:room_id>/pins/", threads.PinListView.as_view(), name="room-pins"),
    # Notifications: preferences, per-room levels, Web Push subscriptions.
    path("users/me/preferences/", notifications.PreferencesView.as_view(), name="preferences"),
    path("rooms/<id:room_id>/notifications/", notifications.RoomNotificationsView.as_view(), name="room-notifications"),
    path("push/vapid-key/", notifications.VapidKeyView.as_view(), name="push-vapid-key"),
    path("push/subscriptions/", notifications.PushSubscriptionView.as_view(), name="push-subscriptions"),
    path("push/test/", notifications.PushTestView.as_view(), name="push-test"),
]

urlpatterns = [
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI without inline script, under the site's Content-Security-Policy.
    path("api/docs/", ApiDocsView.as_view(url_name="schema"), name="docs"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    # The web UI: account pages and the chat screen.
    path("", pages.chat, name="chat"),
    path("sw.js", pages.service_worker, name="service-worker"),
    path("email/unsubscribe/<str:token>/", notification_pages.email_unsubscribe, name="email-unsubscribe"),
    path("rooms/<id:room_id>/", pages.chat, name="chat-room"),
    path("signup/", account_pages.signup, name="signup"),
    path("login/", account_pages.login_page, name="login"),
    path("logout/", account_pages.logout_page, name="logout"),
    path("profile/", account_pages.profile, name="profile"),
    path("login/code/", account_pages.login_code, name="login-code"),
    path("login/passkey/", account_pages.login_passkey, name="login-passkey"),
    path("oidc/authenticate/", oidc.sign_in_request, name="oidc-authenticate"),
    path("oidc/callback/", oidc.sign_in_callback, name="oidc-callback"),
    path("profile/two-factor/", account_pages.two_factor, name="two-factor"),
    path("password/reset/", password_pages.reset_request, name="password-reset-page"),
    path("password/reset/confirm/", password_pages.reset_confirm, name="password-reset-confirm-page"),
    path("email/verify/<str:token>/", password_pages.email_verify_page, name="email-verify"),
    # Unknown API paths answer JSON, in DEBUG too, so clients can always parse the reply.
    # CSRF-exempt like every API view: a POST to a wrong API path is a JSON 404, not an HTML 403.
    re_path(r"^api/", csrf_exempt(errors.not_found)),
]

handler404 = "core.errors.not_found"
handler500 = "core.errors.server_error"
