"""REST reads of what only the realtime side knows: who is online."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.requests import AuthedRequest
from core.api import ID_MAX, whole_number
from core.errors import Invalid
from realtime import presence
from rooms import selectors


class PresenceSerializer(serializers.Serializer):
    online = serializers.ListField(child=serializers.IntegerField(), help_text="Ids of the users online now")


PRESENCE_MAX_USERS = 200


def _id_list(raw: str, *, name: str, maximum: int) -> list[int]:
    """Parse a comma-separated list of ids from a query parameter, or raise Invalid."""
    ids: list[int] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        user_id = whole_number(part)
        if user_id is None or not 0 < user_id <= ID_MAX:
            raise Invalid({name: "Give user ids separated by commas."})
        ids.append(user_id)
    if len(ids) > maximum:
        raise Invalid({name: f"Ask about at most {maximum} users at once."})
    return ids


class PresenceView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "users",
                {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1, "maximum": ID_MAX},
                    "maxItems": PRESENCE_MAX_USERS,
                },
                style="form",
                explode=False,
                description="User ids, separated by commas (none: an empty answer)",
            )
        ],
        responses=PresenceSerializer,
        summary="Who of these users is online now",
        description="Only users who share a channel with the caller, or a direct conversation with at least "
        "one message, are reported; the others read as offline. "
        "Changes then arrive as `presence` frames on /ws/.",
    )
    def get(self, request: AuthedRequest) -> Response:
        wanted = _id_list(request.GET.get("users", ""), name="users", maximum=PRESENCE_MAX_USERS)
        # Presence is visible only through channels and DMs written in, as on the socket.
        roommates = selectors.roommates_among(user=request.user, user_ids=wanted)
        return Response({"online": async_to_sync(presence.online_among)(roommates)})
