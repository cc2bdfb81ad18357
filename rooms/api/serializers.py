from __future__ import annotations

from rest_framework import serializers

from accounts.api.serializers import UserSerializer
from core.api import ID_MAX, StrictSerializer, TrimmedText, page_serializer
from rooms.models import Membership, Room
from rooms.services import NAME_MAX, ROOM_CREATE_MEMBERS_MAX, TOPIC_MAX


class RoomSerializer(serializers.Serializer):
    """Output shape of a room (documentation; payloads are built by rooms.payloads)."""

    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Room.Kind.choices)
    name = serializers.CharField()
    slug = serializers.CharField()
    topic = serializers.CharField()
    visibility = serializers.ChoiceField(choices=Room.Visibility.choices)
    is_default = serializers.BooleanField(help_text="Whether every new account joins this channel")
    created_at = serializers.DateTimeField()
    member_count = serializers.IntegerField()
    my_role = serializers.ChoiceField(choices=Membership.Role.choices, allow_null=True)
    unread_count = serializers.IntegerField()
    mention_count = serializers.IntegerField(help_text="Unread messages that @mention the caller")
    last_read_message_id = serializers.IntegerField(help_text="The caller's read marker (0: nothing read)")
    last_message_id = serializers.IntegerField(allow_null=True)
    members = UserSerializer(many=True, required=False, help_text="Direct rooms only")


class PublicRoomSerializer(RoomSerializer):
    banned = serializers.BooleanField(help_text="Whether the caller is banned from the channel (and so cannot join)")


PublicRoomPageSerializer = page_serializer("PublicRoomPageSerializer", PublicRoomSerializer)


class MemberSerializer(serializers.Serializer):
    user = UserSerializer()
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    joined_at = serializers.DateTimeField()


MemberPageSerializer = page_serializer("MemberPageSerializer", MemberSerializer)


class RoomCreateInput(StrictSerializer):
    name = TrimmedText(max_length=200, allow_blank=True, limit=NAME_MAX)
    topic = TrimmedText(max_length=1000, required=False, allow_blank=True, default="", limit=TOPIC_MAX)
    visibility = serializers.ChoiceField(choices=Room.Visibility.choices, required=False, default="public")
    members = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=ID_MAX),
        required=False,
        default=list,
        max_length=ROOM_CREATE_MEMBERS_MAX,
        help_text="User ids of the channel's first members, added with it",
    )


class RoomUpdateInput(StrictSerializer):
    name = TrimmedText(max_length=200, required=False, allow_blank=True, limit=NAME_MAX)
    topic = TrimmedText(max_length=1000, required=False, allow_blank=True, limit=TOPIC_MAX)
    is_default = serializers.BooleanField(required=False, help_text="Site staff only: every new account joins it")


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
    banned_by = UserSerializer(allow_null=True, help_text="Who banned the user (null once their account is gone)")
    created_at = serializers.DateTimeField()


BanPageSerializer = page_serializer("BanPageSerializer", BanSerializer)


class DirectInput(StrictSerializer):
    users = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=ID_MAX), allow_empty=True, max_length=20
    )
