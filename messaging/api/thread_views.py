"""Threads and pins API: a thread's replies, following, read positions, the followed-threads listing, pins."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.requests import AuthedRequest
from core.api import ID_MAX, LIMIT_PARAMETER, page_body, page_limit, query_int
from messaging import pins, selectors, threads
from messaging.api.serializers import FollowedThreadPageSerializer, MessageSerializer, ReadInput, ThreadSerializer
from messaging.payloads import message_payload
from rooms.selectors import membership_require


class ThreadView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("after", int, description="Only replies with a higher id (page forwards)"),
            LIMIT_PARAMETER,
        ],
        responses=ThreadSerializer,
        summary="A thread: its root and its replies, ascending (any message of the thread names it)",
    )
    def get(self, request: AuthedRequest, message_id: int) -> Response:
        root = threads.thread_root_for_member(user=request.user, message_id=message_id)
        replies, has_more = threads.thread_replies(
            root=root, after=query_int(request, "after", minimum=0, maximum=ID_MAX), limit=page_limit(request)
        )
        state = threads.thread_state(user=request.user, root=root)
        return Response(
            {
                "root": message_payload(root),
                "results": [message_payload(reply) for reply in replies],
                "has_more": has_more,
                "following": bool(state and state.following),
                "last_read_id": state.last_read_id if state else 0,
            }
        )


class ThreadFollowView(APIView):
    @extend_schema(request=None, responses={204: None}, summary="Follow a thread")
    def put(self, request: AuthedRequest, message_id: int) -> Response:
        root = threads.thread_root_for_member(user=request.user, message_id=message_id)
        threads.thread_follow(user=request.user, root=root, following=True)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={204: None}, summary="Stop following a thread")
    def delete(self, request: AuthedRequest, message_id: int) -> Response:
        root = threads.thread_root_for_member(user=request.user, message_id=message_id)
        threads.thread_follow(user=request.user, root=root, following=False)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ThreadReadView(APIView):
    @extend_schema(
        request=ReadInput, responses={204: None}, summary="Move the caller's read position in a thread forward"
    )
    def post(self, request: AuthedRequest, message_id: int) -> Response:
        root = threads.thread_root_for_member(user=request.user, message_id=message_id)
        data = ReadInput(data=request.data)
        data.is_valid(raise_exception=True)
        threads.thread_read(user=request.user, root=root, message_id=data.validated_data["message_id"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class FollowedThreadListView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("room", int, description="Only threads of this room"),
            OpenApiParameter(
                "before", int, description="The next page: threads whose latest activity id is lower than this"
            ),
            LIMIT_PARAMETER,
        ],
        responses=FollowedThreadPageSerializer,
        summary="The threads the caller follows, latest reply first, with unread counts",
    )
    def get(self, request: AuthedRequest) -> Response:
        states, has_more = threads.followed_threads(
            user=request.user,
            room_id=query_int(request, "room", minimum=1, maximum=ID_MAX),
            before=query_int(request, "before", minimum=1, maximum=ID_MAX),
            limit=page_limit(request),
        )
        results = [
            {
                "root": message_payload(state.root),
                "unread_count": state.unread_count,  # type: ignore[attr-defined]
                "last_read_id": state.last_read_id,
            }
            for state in states
        ]
        return Response(page_body(results, has_more))


class PinView(APIView):
    @extend_schema(
        request=None, responses={204: None}, summary="Pin a message (a channel's owners and admins; anyone in a DM)"
    )
    def post(self, request: AuthedRequest, message_id: int) -> Response:
        message, _ = selectors.message_get_for_member(user=request.user, message_id=message_id)
        pins.message_pin(actor=request.user, message=message, pinned=True)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={204: None}, summary="Unpin a message")
    def delete(self, request: AuthedRequest, message_id: int) -> Response:
        message, _ = selectors.message_get_for_member(user=request.user, message_id=message_id)
        pins.message_pin(actor=request.user, message=message, pinned=False)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PinListView(APIView):
    @extend_schema(responses=MessageSerializer(many=True), summary="A room's pinned messages, newest pin first")
    def get(self, request: AuthedRequest, room_id: int) -> Response:
        membership = membership_require(user=request.user, room=room_id)
        return Response([message_payload(message) for message in pins.pinned_messages(room=membership.room)])
