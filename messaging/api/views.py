"""Messaging API: history, posting, editing, deleting, reactions, reports and search."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.requests import AuthedRequest
from core import ratelimit
from core.api import ID_MAX, LIMIT_PARAMETER, page_body, page_limit, query_int, query_text
from core.errors import Invalid
from messaging import selectors, services
from messaging.api.serializers import (
    EditSerializer,
    MessageEditInput,
    MessagePageSerializer,
    MessagePostInput,
    MessageSerializer,
    ReactionInput,
    ReadAllSerializer,
    ReadInput,
    ReportInput,
    ReportSerializer,
)
from messaging.payloads import edit_payload, message_payload, report_payload
from messaging.search import search_filters_parse
from rooms.selectors import membership_require, room_require_visible


class MessageListView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("before", int, description="Only messages with a lower id (page backwards)"),
            OpenApiParameter("after", int, description="Only messages with a higher id (page forwards)"),
            OpenApiParameter(
                "around",
                int,
                description="The page centred on this message of the room (permalinks); the reply also has `has_newer`",
            ),
            LIMIT_PARAMETER,
        ],
        responses=MessagePageSerializer,
        summary="A room's history, ascending by id",
    )
    def get(self, request: AuthedRequest, room_id: int) -> Response:
        membership = membership_require(user=request.user, room=room_id)
        before = query_int(request, "before", minimum=1, maximum=ID_MAX)
        after = query_int(request, "after", minimum=0, maximum=ID_MAX)
        around = query_int(request, "around", minimum=1, maximum=ID_MAX)
        if around is not None:
            if before is not None or after is not None:
                raise Invalid({"around": "Give around alone, without before or after."})
            page, has_older, has_newer = selectors.message_history_around(
                room=membership.room, message_id=around, limit=page_limit(request)
            )
            body = page_body([message_payload(message) for message in page], has_older)
            return Response({**body, "has_newer": has_newer})
        messages, has_more = selectors.message_history(
            room=membership.room, before=before, after=after, limit=page_limit(request)
        )
        return Response(page_body([message_payload(message) for message in messages], has_more))

    @extend_schema(
        request=MessagePostInput,
        responses={201: MessageSerializer, 200: MessageSerializer},
        summary="Post a message (idempotent by client_id)",
    )
    def post(self, request: AuthedRequest, room_id: int) -> Response:
        # Outsiders are refused before their input is looked at.
        membership_require(user=request.user, room=room_id)
        data = MessagePostInput(data=request.data)
        data.is_valid(raise_exception=True)
        # One budget for what a user sends, over REST and all their sockets (core.ratelimit).
        ratelimit.send_budget_require(request.user.pk)
        message, created = services.message_post(room=room_id, author=request.user, **data.validated_data)
        return Response(message_payload(message), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class MessageDetailView(APIView):
    @extend_schema(responses=MessageSerializer, summary="A message")
    def get(self, request: AuthedRequest, message_id: int) -> Response:
        message, _ = selectors.message_get_for_member(user=request.user, message_id=message_id)
        return Response(message_payload(message))

    @extend_schema(request=MessageEditInput, responses=MessageSerializer, summary="Edit your message")
    def patch(self, request: AuthedRequest, message_id: int) -> Response:
        message, _ = selectors.message_get_for_member(user=request.user, message_id=message_id)
        data = MessageEditInput(data=request.data)
        data.is_valid(raise_exception=True)
        message = services.message_edit(actor=request.user, message=message, body=data.validated_data["body"])
        return Response(message_payload(message))

    @extend_schema(responses={204: None}, summary="Delete a message")
    def delete(self, request: AuthedRequest, message_id: int) -> Response:
        if request.user.is_staff:
            # Staff moderate everywhere, including rooms they are not in.
            message = selectors.message_get_any(message_id=message_id)
        else:
            message, _ = selectors.message_get_for_member(user=request.user, message_id=message_id)
        services.message_delete(actor=request.user, message=message)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EditHistoryView(APIView):
    @extend_schema(responses=EditSerializer(many=True), summary="Earlier texts of a message, oldest first")
    def get(self, request: AuthedRequest, message_id: int) -> Response:
        message, _ = selectors.message_get_for_member(user=request.user, message_id=message_id)
        edits = selectors.edit_history(message=message)
        return Response([edit_payload(edit) for edit in edits])


class ReactionListView(APIView):
    @extend_schema(request=ReactionInput, responses={201: MessageSerializer, 200: MessageSerializer}, summary="React")
    def post(self, request: AuthedRequest, message_id: int) -> Response:
        message, _ = selectors.message_get_for_member(user=request.user, message_id=message_id)
        data = ReactionInput(data=request.data)
        data.is_valid(raise_exception=True)
        message, created = services.reaction_add(user=request.user, message=message, emoji=data.validated_data["emoji"])
        return Response(message_payload(message), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ReactionDetailView(APIView):
    @extend_schema(responses={204: None}, summary="Take back your reaction")
    def delete(self, request: AuthedRequest, message_id: int, emoji: str) -> Response:
        message, _ = selectors.message_get_for_member(user=request.user, message_id=message_id)
        services.reaction_remove(user=request.user, message=message, emoji=emoji)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReportView(APIView):
    @extend_schema(
        request=ReportInput, responses={201: ReportSerializer, 200: ReportSerializer}, summary="Report a message"
    )
    def post(self, request: AuthedRequest, message_id: int) -> Response:
        message, _ = selectors.message_get_for_member(user=request.user, message_id=message_id)
        data = ReportInput(data=request.data)
        data.is_valid(raise_exception=True)
        report, created = services.report_create(
            reporter=request.user, message=message, reason=data.validated_data["reason"]
        )
        return Response(report_payload(report), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class SearchView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "q",
                str,
                required=True,
                description="Words to find, and filters: in:#channel, from:@username, before:/after:YYYY-MM-DD",
            ),
            OpenApiParameter("room", int, description="Only this room"),
            OpenApiParameter("author", int, description="Only messages by this user id"),
            OpenApiParameter(
                "has", str, description="`file`: messages with a file attached; `image`: with an image among them"
            ),
            OpenApiParameter("since", str, description="Only messages from this day on (YYYY-MM-DD, UTC)"),
            OpenApiParameter("until", str, description="Only messages up to the end of this day (YYYY-MM-DD, UTC)"),
            OpenApiParameter("before", int, description="Only messages with a lower id (the next page)"),
            LIMIT_PARAMETER,
        ],
        responses=MessagePageSerializer,
        summary="Search messages in the caller's rooms, newest first",
    )
    def get(self, request: AuthedRequest) -> Response:
        query = query_text(request, "q")
        filters = search_filters_parse(
            user=request.user,
            query=query,
            author_id=query_int(request, "author", minimum=1, maximum=ID_MAX),
            has=request.GET.get("has"),
            since=query_text(request, "since") or None,
            until=query_text(request, "until") or None,
        )
        if not filters.words and not filters.narrows:
            raise Invalid({"q": "Give some words to search for."})
        messages, has_more = selectors.message_search(
            user=request.user,
            query=filters.words,
            room_id=query_int(request, "room", minimum=1, maximum=ID_MAX),
            before=query_int(request, "before", minimum=1, maximum=ID_MAX),
            limit=page_limit(request),
            filters=filters,
        )
        return Response(page_body([message_payload(message) for message in messages], has_more))


class ReadView(APIView):
    @extend_schema(request=ReadInput, responses={204: None}, summary="Move the caller's read marker forward")
    def post(self, request: AuthedRequest, room_id: int) -> Response:
        room = room_require_visible(user=request.user, room_id=room_id)
        data = ReadInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.read_mark(user=request.user, room=room, message_id=data.validated_data["message_id"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReadAllView(APIView):
    @extend_schema(
        request=None,
        responses=ReadAllSerializer,
        operation_id="rooms_read_all",
        summary="Mark every room read",
        description="Moves the caller's read marker in each of their rooms to its newest message.",
    )
    def post(self, request: AuthedRequest) -> Response:
        moved = services.read_mark_all(user=request.user)
        return Response(
            {"rooms": [{"room": room_id, "message_id": message_id} for room_id, message_id in moved.items()]}
        )
