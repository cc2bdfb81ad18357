"""Search filters: the `in:#room from:@user has:file before:/after:` words of a query, and the same as parameters.

`search_filters_parse` splits a query into its words and its filters and
checks every filter's value; nonsense is refused with an error keyed by the
filter's name. Dates are whole days in UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from accounts.models import User
from core.errors import Invalid
from rooms.models import Membership, Room

# `in:#general`, `from:@alice`, `has:file`, `before:2026-12-01`, `after:2026-11-30`.
FILTER_WORD = re.compile(r"^(in|from|has|before|after):(\S*)$", re.IGNORECASE)


@dataclass
class SearchFilters:
    """What a search keeps: words to match, and the filters; None where a filter is not given."""

    words: str = ""
    room_ids: list[int] = field(default_factory=list)
    author_id: int | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    # "file": messages with any attachment; "image": with an image among them.
    has: str | None = None

    @property
    def narrows(self) -> bool:
        """Whether any filter is set: then a search needs no words."""
        return bool(self.room_ids or self.author_id or self.since or self.until or self.has)


HAS_VALUES = ("file", "image")


def _day(value: str, name: str) -> dt.date:
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise Invalid({name: f"Use a date as YYYY-MM-DD (got {value[:40]!r})."}) from None


def _start_of(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def _later(current: dt.datetime | None, moment: dt.datetime) -> dt.datetime:
    return moment if current is None else max(current, moment)


def _earlier(current: dt.datetime | None, moment: dt.datetime) -> dt.datetime:
    return moment if current is None else min(current, moment)


def _room_named(user: User, value: str, name: str) -> int:
    slug = value.removeprefix("#").lower()
    if not slug:
        raise Invalid({name: "Name a channel, like in:#general."})
    room_id = (
        Membership.objects.filter(
            user=user, room__slug=slug, room__kind=Room.Kind.CHANNEL, room__deleted_at__isnull=True
        )
        .values_list("room_id", flat=True)
        .first()
    )
    if room_id is None:
        raise Invalid({name: f"You are in no channel called #{slug[:80]}."})
    return room_id


def _user_named(value: str, name: str) -> int:
    username = value.removeprefix("@")
    if not username:
        raise Invalid({name: "Name a person, like from:@alice."})
    user_id = User.objects.filter(username__iexact=username[:150]).values_list("pk", flat=True).first()
    if user_id is None:
        raise Invalid({name: f"Nobody is called @{username[:150]}."})
    return user_id


def _attachment_kind(value: str, name: str) -> str:
    kind = value.lower()
    if kind not in HAS_VALUES:
        raise Invalid({name: f"Use has:file or has:image (got {value[:40]!r})."})
    return kind


def search_filters_parse(
    *,
    user: User,
    query: str,
    room_id: int | None = None,
    author_id: int | None = None,
    has: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> SearchFilters:
    """Return the query's words and every filter, from its filter words and from the parameters given."""
    filters = SearchFilters(author_id=author_id)
    if room_id is not None:
        filters.room_ids.append(room_id)
    if has is not None:
        filters.has = _attachment_kind(has, "has")
    if since:
        filters.since = _start_of(_day(since, "since"))
    if until:
        filters.until = _start_of(_day(until, "until") + dt.timedelta(days=1))
    words = []
    for word in query.split():
        match = FILTER_WORD.match(word)
        if match is None:
            words.append(word)
            continue
        name, value = match.group(1).lower(), match.group(2)
        if name == "in":
            filters.room_ids.append(_room_named(user, value, name))
        elif name == "from":
            filters.author_id = _user_named(value, name)
        elif name == "has":
            filters.has = _attachment_kind(value, name)
        elif name == "before":
            filters.until = _earlier(filters.until, _start_of(_day(value, name)))
        else:
            filters.since = _later(filters.since, _start_of(_day(value, name) + dt.timedelta(days=1)))
    filters.words = " ".join(words)
    return filters
