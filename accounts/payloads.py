"""The wire shape of a user, shared by the REST API, WebSocket frames and events."""

from typing import TypedDict

from accounts.models import User


class UserPayload(TypedDict):
    id: int
    username: str
    display_name: str


class MePayload(UserPayload):
    email: str


class UserDetailPayload(UserPayload):
    is_active: bool


def user_payload(user: User) -> UserPayload:
    return {"id": user.pk, "username": user.username, "display_name": user.shown_name}


def me_payload(user: User) -> MePayload:
    return {**user_payload(user), "email": user.email}


def user_detail_payload(user: User) -> UserDetailPayload:
    """Return a user as `users/{id}/` shows them: whether the account is still active too."""
    return {**user_payload(user), "is_active": user.is_active}
