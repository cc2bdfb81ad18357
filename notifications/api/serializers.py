"""Input and output shapes of the notification API (the schema documents them)."""

from __future__ import annotations

from rest_framework import serializers

from core.api import StrictSerializer
from notifications.services import EMAIL_DELAY_MAX_SECONDS
from rooms.models import NotifyLevel


class PreferencesSerializer(serializers.Serializer):
    push = serializers.BooleanField(help_text="Web Push to this person's subscribed browsers")
    email = serializers.BooleanField(help_text="Emails of missed DMs and mentions")
    email_delay_seconds = serializers.IntegerField(
        min_value=0, max_value=EMAIL_DELAY_MAX_SECONDS, help_text="How long a message stays unread before it is emailed"
    )
    dnd_until = serializers.DateTimeField(allow_null=True, help_text="Do not disturb until then (null: off)")
    share_read_receipts = serializers.BooleanField()
    timezone = serializers.CharField(max_length=64, help_text="IANA time zone name, e.g. Europe/Paris")


class PreferencesInput(StrictSerializer, PreferencesSerializer):
    pass


class RoomNotificationsSerializer(serializers.Serializer):
    room = serializers.IntegerField(read_only=True)
    level = serializers.ChoiceField(choices=NotifyLevel.choices)
    muted_until = serializers.DateTimeField(allow_null=True, help_text="Silent until then (null: not muted)")


class RoomNotificationsInput(StrictSerializer):
    level = serializers.ChoiceField(choices=NotifyLevel.choices, required=False)
    muted_until = serializers.DateTimeField(allow_null=True, required=False)


class VapidKeySerializer(serializers.Serializer):
    public_key = serializers.CharField(help_text="URL-safe base64 of the uncompressed P-256 point")


class PushKeysInput(StrictSerializer):
    p256dh = serializers.CharField(max_length=100)
    auth = serializers.CharField(max_length=50)


class PushSubscriptionInput(StrictSerializer):
    endpoint = serializers.CharField(max_length=2000)
    keys = PushKeysInput()


class PushUnsubscribeInput(StrictSerializer):
    endpoint = serializers.CharField(max_length=2000)


class PushSubscriptionSerializer(serializers.Serializer):
    endpoint = serializers.CharField()
    created_at = serializers.DateTimeField()


class PushTestSerializer(serializers.Serializer):
    subscriptions = serializers.IntegerField(help_text="How many browsers a test push was queued for")
