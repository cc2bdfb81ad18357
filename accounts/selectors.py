"""Reads of users."""

from __future__ import annotations

from django.db.models import Q

from accounts.models import User
from core.errors import NotFound


def user_search(*, query: str = "", after: int = 0, limit: int = 50) -> tuple[list[User], bool]:
    """Return a page of active users whose username or display name contains `query`, by id."""
    users = User.objects.filter(is_active=True, id__gt=after)
    if query:
        users = users.filter(Q(username__icontains=query) | Q(display_name__icontains=query))
    page = list(users.order_by("id")[: limit + 1])
    return page[:limit], len(page) > limit


def user_get(*, user_id: int) -> User:
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise NotFound("User not found.")
    return user
