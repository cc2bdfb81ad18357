"""Rooms API: channels, DMs, memberships, bans and read markers.

Views parse, authorise through selectors, call one service and shape the reply.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.requests import AuthedRequest
from core.api import LIMIT_PARAMETER, page_body, page_limit, query_int, query_text
from rooms import selectors, services
from rooms.api.serializers import (
    BanInput,
    BanPageSerializer,
    BanSerializer,
    DirectInput,
    MemberAddInput,
    MemberPageSerializer,
    MemberRoleInput,
    MemberSerializer,
    PublicRoomPageSerializer,
    RoomCreateInput,
    RoomSerializer,
    RoomUpdateInput,
)
from rooms.payloads import ban_payload, member_payload, public_room_payload, room_payload

# Adding someone replies with the Member, or with the new group Room when the room was a 1:1 DM.
MEMBER_OR_ROOM = PolymorphicProxySerializer(
    component_name="MemberOrRoom",
    serializers=[MemberSerializer, RoomSerializer],
    resource_type_field_name=None,
)


def _room_reply(user, room_id: int, status_code: int = status.HTTP_200_OK) -> Response:  # type: ignore[no-untyped-def]
    return Response(room_payload(selectors.room_get_visible(user=user, room_id=room_id)), status=status_code)


class RoomListView(APIView):
    @extend_schema(responses=RoomSerializer(many=True), summary="The caller's rooms, channels and DMs")
    def get(self, request: AuthedRequest) -> Response:
        return Response([room_payload(room) for room in selectors.room_list_for_member(user=request.user)])

    @extend_schema(request=RoomCreateInput, responses={201: RoomSerializer}, summary="Create a channel")
    def post(self, request: AuthedRequest) -> Response:
        data = RoomCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        room = services.room_create(creator=request.user, **data.validated_data)
        return _room_reply(request.user, room.pk, status.HTTP_201_CREATED)


class PublicRoomListView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="Part of a channel's name or topic"),
            OpenApiParameter("after", int, description="Return channels with an id above this"),
            LIMIT_PARAMETER,
        ],
        responses=PublicRoomPageSerializer,
        summary="Browse public channels",
        description="Each channel says whether the caller is `banned` from it.",
    )
    def get(self, request: AuthedRequest) -> Response:
        rooms, has_more = selectors.room_list_public(
            user=request.user,
            query=query_text(request, "q"),
            after=query_int(request, "after") or 0,
            limit=page_limit(request),
        )
        return Response(page_body([public_room_payload(room) for room in rooms], has_more))


class RoomDetailView(APIView):
    @extend_schema(responses=RoomSerializer, summary="A room")
    def get(self, request: AuthedRequest, room_id: int) -> Response:
        return _room_reply(request.user, room_id)

    @extend_schema(request=RoomUpdateInput, responses=RoomSerializer, summary="Rename a channel or set its topic")
    def patch(self, request: AuthedRequest, room_id: int) -> Response:
        room = selectors.room_get_visible(user=request.user, room_id=room_id)
        data = RoomUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        # Staff choose default channels whether or not they run the channel (logged as moderation).
        site_moderator = "is_default" in data.validated_data and request.user.is_staff
        services.room_update(actor=request.user, room=room, site_moderator=site_moderator, **data.validated_data)
        return _room_reply(request.user, room_id)

    @extend_schema(responses={204: None}, summary="Delete a channel")
    def delete(self, request: AuthedRequest, room_id: int) -> Response:
        room = selectors.room_get_visible(user=request.user, room_id=room_id)
        services.room_delete(actor=request.user, room=room)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RoomJoinView(APIView):
    @extend_schema(request=None, responses=RoomSerializer, summary="Join a public channel")
    def post(self, request: AuthedRequest, room_id: int) -> Response:
        room = selectors.room_get_visible(user=request.user, room_id=room_id)
        services.room_join(user=request.user, room=room)
        return _room_reply(request.user, room_id)


class RoomLeaveView(APIView):
    @extend_schema(request=None, responses={204: None}, summary="Leave a room")
    def post(self, request: AuthedRequest, room_id: int) -> Response:
        services.room_leave(user=request.user, room=selectors.room_require_visible(user=request.user, room_id=room_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberListView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("after", int, description="Return members with a user id above this"),
            LIMIT_PARAMETER,
        ],
        responses=MemberPageSerializer,
        summary="A room's members",
    )
    def get(self, request: AuthedRequest, room_id: int) -> Response:
        membership = selectors.membership_require(user=request.user, room=room_id)
        members, has_more = selectors.member_list(
            room=membership.room, after=query_int(request, "after") or 0, limit=page_limit(request)
        )
        return Response(page_body([member_payload(member) for member in members], has_more))

    @extend_schema(
        request=MemberAddInput,
        responses={201: MEMBER_OR_ROOM, 200: MEMBER_OR_ROOM},
        summary="Add someone (to a 1:1 DM: open a new group DM)",
    )
    def post(self, request: AuthedRequest, room_id: int) -> Response:
        room = selectors.room_require_visible(user=request.user, room_id=room_id)
        data = MemberAddInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership, created = services.member_add(actor=request.user, room=room, user_id=data.validated_data["user"])
        reply_status = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        if membership.room_id != room.pk:
            # A 1:1 conversation was left as it is; the caller gets the group conversation instead.
            return _room_reply(request.user, membership.room_id, reply_status)
        return Response(member_payload(membership), status=reply_status)


class MemberDetailView(APIView):
    @extend_schema(request=MemberRoleInput, responses=MemberSerializer, summary="Change a member's role")
    def patch(self, request: AuthedRequest, room_id: int, user_id: int) -> Response:
        room = selectors.room_require_visible(user=request.user, room_id=room_id)
        data = MemberRoleInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.member_set_role(
            actor=request.user, room=room, user_id=user_id, role=data.validated_data["role"]
        )
        return Response(member_payload(membership))

    @extend_schema(responses={204: None}, summary="Remove a member (kick)")
    def delete(self, request: AuthedRequest, room_id: int, user_id: int) -> Response:
        room = selectors.room_require_visible(user=request.user, room_id=room_id)
        services.member_kick(actor=request.user, room=room, user_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BanListView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("after", int, description="Return bans of users with an id above this"),
            OpenApiParameter("limit", int, description="Page size, 1–200 (default 50)"),
        ],
        responses=BanPageSerializer,
        summary="A channel's bans (owners and admins)",
    )
    def get(self, request: AuthedRequest, room_id: int) -> Response:
        bans, has_more = selectors.ban_list_for_moderator(
            user=request.user, room_id=room_id, after=query_int(request, "after") or 0, limit=page_limit(request)
        )
        return Response(page_body([ban_payload(ban) for ban in bans], has_more))

    @extend_schema(request=BanInput, responses={201: BanSerializer}, summary="Ban a user from a channel")
    def post(self, request: AuthedRequest, room_id: int) -> Response:
        room = selectors.room_require_visible(user=request.user, room_id=room_id)
        data = BanInput(data=request.data)
        data.is_valid(raise_exception=True)
        ban = services.member_ban(
            actor=request.user, room=room, user_id=data.validated_data["user"], reason=data.validated_data["reason"]
        )
        return Response(ban_payload(ban), status=status.HTTP_201_CREATED)


class BanDetailView(APIView):
    @extend_schema(responses={204: None}, summary="Lift a ban")
    def delete(self, request: AuthedRequest, room_id: int, user_id: int) -> Response:
        room = selectors.room_require_visible(user=request.user, room_id=room_id)
        services.member_unban(actor=request.user, room=room, user_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DirectView(APIView):
    @extend_schema(
        request=DirectInput, responses={201: RoomSerializer, 200: RoomSerializer}, summary="Open a direct conversation"
    )
    def post(self, request: AuthedRequest) -> Response:
        data = DirectInput(data=request.data)
        data.is_valid(raise_exception=True)
        room, created = services.direct_open(creator=request.user, user_ids=data.validated_data["users"])
        return _room_reply(request.user, room.pk, status.HTTP_201_CREATED if created else status.HTTP_200_OK)
