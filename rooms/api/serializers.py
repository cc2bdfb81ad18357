from __future__ import annotations

from rest_framework import serializers

from accounts.api.serializers import UserSerializer
from core.api import ID_MAX, StrictSerializer, page_serializer
from rooms.models import Membership, Room


class RoomSerializer(serializers.Serializer):
    """Output shape of a room (documentation; payloads are built by rooms.payloads)."""

    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Room.Kind.choices)
    name = serializers.CharField()
    slug = serializers.CharField()
    topic = serializers.CharField()
    visibility = serializers.ChoiceField(choices=Room.Visibility.choices)
    created_at = serializers.DateTimeField()
    member_count = serializers.IntegerField()
    my_role = serializers.ChoiceField(choices=Membership.Role.choices, allow_null=True)
    unread_count = serializers.IntegerField()
    mention_count = serializers.IntegerField(help_text="Unread messages that @mention the caller")
    last_read_message_id = serializers.IntegerField(help_text="The caller's read marker (0: nothing read)")
    last_message_id = serializers.IntegerField(allow_null=True)
    members = UserSerializer(many=True, required=False, help_text="Direct rooms only")


RoomPageSerializer = page_serializer("RoomPageSerializer", RoomSerializer)


class MemberSerializer(serializers.Serializer):
    user = UserSerializer()
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    joined_at = serializers.DateTimeField()


MemberPageSerializer = page_serializer("MemberPageSerializer", MemberSerializer)


class RoomCreateInput(StrictSerializer):
    name = serializers.CharField(max_length=200, allow_blank=True)
    topic = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")
    visibility = serializers.ChoiceField(choices=Room.Visibility.choices, required=False, default="public")


class RoomUpdateInput(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    topic = serializers.CharField(max_length=1000, required=False, allow_blank=True)


class MemberAddInput(StrictSerializer):
    user = serializers.IntegerField(min_value=1, max_value=ID_MAX)


class MemberRoleInput(StrictSerializer):
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class BanInput(StrictSerializer):
    user = serializers.IntegerField(min_value=1, max_value=ID_MAX)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class BanSerializer(serializers.Serializer):
    room = serializers.IntegerField()
    user = UserSerializer()
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class DirectInput(StrictSerializer):
    users = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=ID_MAX), allow_empty=True, max_length=20
    )
