"""Notification API: the caller's preferences and their settings per room."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.requests import AuthedRequest
from core.wire import isoformat
from notifications import push, services
from notifications.api.serializers import (
    PreferencesInput,
    PreferencesSerializer,
    PushSubscriptionInput,
    PushSubscriptionSerializer,
    PushTestSerializer,
    PushUnsubscribeInput,
    RoomNotificationsInput,
    RoomNotificationsSerializer,
    VapidKeySerializer,
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


class VapidKeyView(APIView):
    @extend_schema(responses=VapidKeySerializer, summary="The server's VAPID public key, for PushManager.subscribe")
    def get(self, request: AuthedRequest) -> Response:
        return Response({"public_key": push.vapid_keys()[1]})


class PushSubscriptionView(APIView):
    @extend_schema(
        request=PushSubscriptionInput,
        responses={201: PushSubscriptionSerializer, 200: PushSubscriptionSerializer},
        summary="Subscribe this browser to Web Push (200 if the endpoint was known)",
    )
    def post(self, request: AuthedRequest) -> Response:
        data = PushSubscriptionInput(data=request.data)
        data.is_valid(raise_exception=True)
        subscription, created = push.subscription_add(
            user=request.user,
            endpoint=data.validated_data["endpoint"],
            p256dh=data.validated_data["keys"]["p256dh"],
            auth=data.validated_data["keys"]["auth"],
        )
        return Response(
            {"endpoint": subscription.endpoint, "created_at": isoformat(subscription.created_at)},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(request=PushUnsubscribeInput, responses={204: None}, summary="Unsubscribe a browser")
    def delete(self, request: AuthedRequest) -> Response:
        data = PushUnsubscribeInput(data=request.data)
        data.is_valid(raise_exception=True)
        push.subscription_remove(user=request.user, endpoint=data.validated_data["endpoint"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class PushTestView(APIView):
    @extend_schema(request=None, responses={202: PushTestSerializer}, summary="Send a test push to each of my browsers")
    def post(self, request: AuthedRequest) -> Response:
        return Response({"subscriptions": push.trial_push_enqueue(user=request.user)}, status=status.HTTP_202_ACCEPTED)
