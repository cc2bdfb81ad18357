"""Notification API: the caller's preferences and their settings per room."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.requests import AuthedRequest
from notifications import services
from notifications.api.serializers import (
    PreferencesInput,
    PreferencesSerializer,
    RoomNotificationsInput,
    RoomNotificationsSerializer,
)
from notifications.payloads import preferences_payload, room_notifications_payload
from rooms.selectors import membership_require


class PreferencesView(APIView):
    @extend_schema(responses=PreferencesSerializer, summary="The caller's notification preferences")
    def get(self, request: AuthedRequest) -> Response:
        return Response(preferences_payload(services.preferences_of(request.user.pk)))

    @extend_schema(
        request=PreferencesInput, responses=PreferencesSerializer, summary="Change some notification preferences"
    )
    def patch(self, request: AuthedRequest) -> Response:
        data = PreferencesInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        preferences = services.preferences_update(user=request.user, changes=dict(data.validated_data))
        return Response(preferences_payload(preferences))


class RoomNotificationsView(APIView):
    @extend_schema(responses=RoomNotificationsSerializer, summary="The caller's notification level and mute in a room")
    def get(self, request: AuthedRequest, room_id: int) -> Response:
        return Response(room_notifications_payload(membership_require(user=request.user, room=room_id)))

    @extend_schema(
        request=RoomNotificationsInput,
        responses=RoomNotificationsSerializer,
        summary="Set the caller's notification level (all, mentions, none) or mute in a room",
    )
    def patch(self, request: AuthedRequest, room_id: int) -> Response:
        data = RoomNotificationsInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.room_notifications_set(user=request.user, room=room_id, changes=dict(data.validated_data))
        return Response(room_notifications_payload(membership))
